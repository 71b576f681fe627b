// The safetensors file format (https://github.com/huggingface/safetensors): an 8-byte
// little-endian header length, a JSON header {name: {dtype, shape, data_offsets}, 
// __metadata__: {string: string}}, then the raw little-endian tensor bytes. PyTorch's
// `safetensors.torch.load_file` reads what we write, and we read what it writes.
import { createHash } from 'crypto';

export type DType = 'F32' | 'F64' | 'I64' | 'I32' | 'U8';
type TypedArrayOf<D extends DType> = D extends 'F32'
  ? Float32Array
  : D extends 'F64'
    ? Float64Array
    : D extends 'I64'
      ? BigInt64Array
      : D extends 'I32'
        ? Int32Array
        : Uint8Array;
export type TensorData = Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array;

export interface Tensor {
  dtype: DType;
  shape: number[];
  data: TensorData;
}

const BYTES: Record<DType, number> = { F32: 4, F64: 8, I64: 8, I32: 4, U8: 1 };
const CTORS = {
  F32: Float32Array,
  F64: Float64Array,
  I64: BigInt64Array,
  I32: Int32Array,
  U8: Uint8Array,
} as const;

export class SafetensorsError extends Error {
  constructor(source: string, detail: string) {
    super(`${source} is not a valid safetensors file: ${detail}`);
    this.name = 'SafetensorsError';
  }
}

export function tensor<D extends DType>(dtype: D, shape: number[], data: TypedArrayOf<D>): Tensor {
  const count = shape.reduce((a, b) => a * b, 1);
  if (data.length !== count) {
    throw new RangeError(`tensor of shape [${shape}] needs ${count} elements but has ${data.length}`);
  }
  return { dtype, shape, data };
}

// Serializes tensors (in the given order) and string metadata into one Buffer.
export function encodeSafetensors(tensors: Record<string, Tensor>, metadata: Record<string, string> = {}): Buffer {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const bytes = t.data.byteLength;
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);  // keep the data 8-byte aligned
  const headerBytes = Buffer.from(json, 'utf8');
  const out = Buffer.allocUnsafe(8 + headerBytes.length + offset);
  out.writeBigUInt64LE(BigInt(headerBytes.length), 0);
  headerBytes.copy(out, 8);
  let at = 8 + headerBytes.length;
  for (const t of Object.values(tensors)) {
    Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).copy(out, at);
    at += t.data.byteLength;
  }
  return out;
}

export interface Safetensors {
  tensors: Map<string, Tensor>;
  metadata: Record<string, string>;
  // The byte range holding the tensor data (what a checksum covers).
  dataStart: number;
}

// Parses and checks a whole file: header bounds, dtypes, shapes against byte ranges.
export function decodeSafetensors(buf: Buffer, source = 'input'): Safetensors {
  if (buf.length < 8) throw new SafetensorsError(source, `only ${buf.length} bytes`);
  const headerLen = Number(buf.readBigUInt64LE(0));
  if (headerLen > buf.length - 8) {
    throw new SafetensorsError(source, `header length ${headerLen} exceeds the file size ${buf.length} (truncated?)`);
  }
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(buf.subarray(8, 8 + headerLen).toString('utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new SafetensorsError(source, `header is not JSON (${(e as Error).message})`);
  }
  const dataStart = 8 + headerLen;
  const dataLen = buf.length - dataStart;
  const metadata = (header.__metadata__ ?? {}) as Record<string, string>;
  const tensors = new Map<string, Tensor>();
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const e = entry as { dtype?: string; shape?: number[]; data_offsets?: [number, number] };
    if (!e || typeof e.dtype !== 'string' || !Array.isArray(e.shape) || !Array.isArray(e.data_offsets)) {
      throw new SafetensorsError(source, `entry '${name}' lacks dtype, shape or data_offsets`);
    }
    if (!(e.dtype in BYTES)) {
      throw new SafetensorsError(source, `tensor '${name}' has dtype ${e.dtype}; supported: ${Object.keys(BYTES).join(', ')}`);
    }
    const dtype = e.dtype as DType;
    const [begin, end] = e.data_offsets;
    const count = e.shape.reduce((a, b) => a * b, 1);
    if (!(begin >= 0 && end <= dataLen && end - begin === count * BYTES[dtype])) {
      throw new SafetensorsError(source, `tensor '${name}' [${e.shape}] ${dtype} has byte range [${begin}, ${end}) that does not fit its shape or the file`);
    }
    // Copy into an aligned buffer: the file's byte offsets need not suit a typed array.
    const bytes = new Uint8Array(end - begin);
    bytes.set(buf.subarray(dataStart + begin, dataStart + end));
    tensors.set(name, { dtype, shape: e.shape, data: new CTORS[dtype](bytes.buffer, 0, count) });
  }
  return { tensors, metadata, dataStart };
}

// sha256 over the tensor bytes in file order: what a state file's checksum covers. The
// same value results from the tensors before encoding and from the decoded file's bytes.
export function tensorsChecksum(tensors: Iterable<Tensor>): string {
  const h = createHash('sha256');
  for (const t of tensors) h.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  return 'sha256:' + h.digest('hex');
}

export function dataChecksum(buf: Buffer, dataStart: number): string {
  return 'sha256:' + createHash('sha256').update(buf.subarray(dataStart)).digest('hex');
}
