// The safetensors file format (https://github.com/huggingface/safetensors): an 8-byte
// little-endian header length, a JSON header {name: {dtype, shape, data_offsets}, 
// __metadata__: {string: string}}, then the raw little-endian tensor bytes. PyTorch's
// `safetensors.torch.load_file` reads what we write, and we read what it writes.
import { createHash } from 'crypto';
import { Worker } from 'worker_threads';

import { describe } from '../common/validate';

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

// The two errors of a stored file that cannot be trusted, both coded CORRUPT_STATE: the
// bytes are not a safetensors file (this one), or they are but not a state, pointer or
// record we can use (StateError). Decoded in TypeScript, not in C++, so the code is set here.
export class SafetensorsError extends Error {
  readonly code = 'CORRUPT_STATE';
  constructor(source: string, detail: string) {
    super(`${source} is not a valid safetensors file: ${detail}`);
    this.name = 'SafetensorsError';
  }
}

export class StateError extends Error {
  readonly code = 'CORRUPT_STATE';
  constructor(message: string) {
    super(message);
    this.name = 'StateError';
  }
}

// The tensor bytes of a safetensors file, without its header (whose metadata names, for a
// checkpoint, the attempt that wrote it): equal for bitwise-identical network states.
export function tensorBytes(buf: Buffer): Buffer {
  return buf.subarray(8 + Number(buf.readBigUInt64LE(0)));
}

export function tensor<D extends DType>(dtype: D, shape: number[], data: TypedArrayOf<D>): Tensor {
  const count = shape.reduce((a, b) => a * b, 1);
  if (data.length !== count) {
    throw new RangeError(`tensor of shape [${shape}] needs ${count} elements but has ${data.length}`);
  }
  return { dtype, shape, data };
}

// The header's table for tensors written in the given order, end to end: what
// encodeSafetensorsParts writes, known before writing (a state's header checksum covers it).
export function tensorTable(tensors: Record<string, Tensor>): Map<string, TensorEntry> {
  const entries = new Map<string, TensorEntry>();
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    entries.set(name, { dtype: t.dtype, shape: t.shape, begin: offset, end: offset + t.data.byteLength });
    offset += t.data.byteLength;
  }
  return entries;
}

// The file as its pieces, in order: the 8-byte length and the JSON header in one
// buffer, then each tensor's bytes as a view of its data (nothing copied). Writing the
// pieces one after another gives the file; they share the tensors' memory, so the
// tensors must not change until the pieces are written.
export function encodeSafetensorsParts(tensors: Record<string, Tensor>, metadata: Record<string, string> = {}): Buffer[] {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  for (const [name, e] of tensorTable(tensors)) header[name] = { dtype: e.dtype, shape: e.shape, data_offsets: [e.begin, e.end] };
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);  // keep the data 8-byte aligned
  const head = Buffer.allocUnsafe(8 + Buffer.byteLength(json));
  head.writeBigUInt64LE(BigInt(head.length - 8), 0);
  head.write(json, 8, 'utf8');
  return [head, ...Object.values(tensors).map((t) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength))];
}

// Serializes tensors (in the given order) and string metadata into one Buffer.
export function encodeSafetensors(tensors: Record<string, Tensor>, metadata: Record<string, string> = {}): Buffer {
  return Buffer.concat(encodeSafetensorsParts(tensors, metadata));
}

export interface Safetensors {
  tensors: Map<string, Tensor>;
  entries: Map<string, TensorEntry>;  // the header's table, in header order
  metadata: Record<string, string>;
  // The byte range holding the tensor data (what a checksum covers).
  dataStart: number;
}

// One tensor as the header describes it: its bytes are [begin, end) of the data section.
export interface TensorEntry {
  dtype: DType;
  shape: number[];
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  entries: Map<string, TensorEntry>;  // in header order
  metadata: Record<string, string>;
  dataStart: number;  // 8 + the header's length: where the tensor data begins
  dataLength: number;  // the data section's length the table declares (where the last tensor ends)
}

// A header longer than this is refused when streaming (the safetensors library's limit):
// a corrupt length must not make us buffer gigabytes before noticing.
export const MAX_HEADER_BYTES = 100_000_000;

// What a byte offset or a dimension must be: JSON also allows fractions, strings and
// 1e300, which the safetensors format (and PyTorch's reader) does not.
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

// A header value in an error message: short, whatever it is.
const shown = (v: unknown): string => {
  const json = JSON.stringify(v) ?? describe(v);
  return json.length > 60 ? `${json.slice(0, 57)}...` : json;
};

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

// The header's entries in the order of their bytes (by begin; an empty tensor before a
// non-empty one at the same offset).
export function inDataOrder(entries: Map<string, TensorEntry>): [string, TensorEntry][] {
  return [...entries].sort(([, a], [, b]) => a.begin - b.begin || a.end - b.end);
}

// The tensors' bytes must tile the data section: sorted by begin, the first at 0, each
// where the previous one ended (the safetensors spec: the buffer is entirely indexed,
// without holes). Else a header could point one tensor at another's bytes, which the
// checksum over the data would not notice. Returns the data's length.
function checkTiling(entries: Map<string, TensorEntry>, source: string): number {
  let at = 0, previous = '';
  for (const [name, e] of inDataOrder(entries)) {
    if (e.begin < at) throw new SafetensorsError(source, `${rangeText(name, e)} overlapping tensor '${previous}', which ends at ${at}`);
    if (e.begin > at) throw new SafetensorsError(source, `${rangeText(name, e)}, but ${previous ? `tensor '${previous}' ends at ${at}` : 'the data begins at 0'}: a hole in the data`);
    at = e.end;
    previous = name;
  }
  return at;
}

// Parses and checks the JSON header: a JSON object of tensor entries and string metadata,
// dtypes, shapes and offsets as non-negative integers, each byte range the size its shape
// and dtype give, and the ranges tiling the data section (checkTiling).
function parseHeader(json: Buffer, source: string, dataStart: number): SafetensorsHeader {
  let header: unknown;
  try {
    header = JSON.parse(json.toString('utf8'));
  } catch (e) {
    throw new SafetensorsError(source, `header is not JSON (${(e as Error).message})`);
  }
  if (!isObject(header)) throw new SafetensorsError(source, `header is ${shown(header)}, not a JSON object of tensors`);
  const metadata = header.__metadata__ === undefined ? {} : header.__metadata__;
  if (!isObject(metadata)) throw new SafetensorsError(source, `__metadata__ is ${shown(metadata)}, not an object of strings`);
  for (const [key, value] of Object.entries(metadata)) {
    if (typeof value !== 'string') throw new SafetensorsError(source, `__metadata__ '${key}' is ${shown(value)}, not a string`);
  }
  const entries = new Map<string, TensorEntry>();
  for (const [name, e] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    if (!isObject(e) || e.dtype === undefined || e.shape === undefined || e.data_offsets === undefined) {
      throw new SafetensorsError(source, `entry '${name}' lacks dtype, shape or data_offsets`);
    }
    if (typeof e.dtype !== 'string' || !(e.dtype in BYTES)) {
      throw new SafetensorsError(source, `tensor '${name}' has dtype ${shown(e.dtype)}; supported: ${Object.keys(BYTES).join(', ')}`);
    }
    const dtype = e.dtype as DType;
    if (!Array.isArray(e.shape) || !e.shape.every(isCount)) {
      throw new SafetensorsError(source, `tensor '${name}' has shape ${shown(e.shape)}; a shape is a list of non-negative integers`);
    }
    const offsets: unknown = e.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount) || offsets[0] > offsets[1]) {
      throw new SafetensorsError(source, `tensor '${name}' has data_offsets ${shown(offsets)}; expected [begin, end], integers with 0 <= begin <= end`);
    }
    const shape = e.shape as number[];
    const [begin, end] = offsets as [number, number];
    const bytes = shape.reduce((a, b) => a * b, BYTES[dtype]);
    if (bytes !== end - begin) {
      throw new SafetensorsError(source, `${rangeText(name, { dtype, shape, begin, end })} that does not fit its shape: [${shape}] ${dtype} takes ${bytes} bytes`);
    }
    entries.set(name, { dtype, shape, begin, end });
  }
  return { entries, metadata: metadata as Record<string, string>, dataStart, dataLength: checkTiling(entries, source) };
}

// The data section holds exactly what the table declares. Fewer bytes (`complete`: the
// file has ended): the first tensor (in header order) they cut is named; more (known as
// soon as they arrive): bytes that no tensor owns.
function checkDataLength(header: SafetensorsHeader, dataLen: number, source: string, complete = true): void {
  if (complete && dataLen < header.dataLength) {
    const [name, e] = [...header.entries].find(([, x]) => x.end > dataLen)!;
    throw new SafetensorsError(source, `${rangeText(name, e)} that does not fit the file: the data ends at ${dataLen} (truncated?)`);
  }
  if (dataLen > header.dataLength) {
    throw new SafetensorsError(source, `the data section goes on after the last tensor, which ends at ${header.dataLength} (${dataLen} bytes${complete ? '' : ' so far'}): bytes no tensor owns`);
  }
}

const rangeText = (name: string, e: TensorEntry) =>
  `tensor '${name}' [${e.shape}] ${e.dtype} has byte range [${e.begin}, ${e.end})`;

// A typed array over exactly `bytes` (a tensor's byte range): a view sharing its memory
// when the offset suits the element size, else an aligned copy.
function typed(dtype: DType, bytes: Uint8Array): TensorData {
  const count = bytes.byteLength / BYTES[dtype];
  if (bytes.byteOffset % BYTES[dtype] === 0) return new CTORS[dtype](bytes.buffer as ArrayBuffer, bytes.byteOffset, count);
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return new CTORS[dtype](copy.buffer, 0, count);
}

// Parses and checks a whole file: header bounds, the header (parseHeader) and the data's
// length against it. The tensors are views of buf where the alignment allows (no copy),
// so they share its memory: writing one changes buf, and the other way round.
export function decodeSafetensors(buf: Buffer, source = 'input'): Safetensors {
  if (buf.length < 8) throw new SafetensorsError(source, `only ${buf.length} bytes`);
  const headerLen = buf.readBigUInt64LE(0);
  if (headerLen > BigInt(buf.length - 8)) {
    throw new SafetensorsError(source, `header length ${headerLen} exceeds the file size ${buf.length} (truncated?)`);
  }
  const dataStart = 8 + Number(headerLen);
  const header = parseHeader(buf.subarray(8, dataStart), source, dataStart);
  checkDataLength(header, buf.length - dataStart, source);
  const tensors = new Map<string, Tensor>();
  for (const [name, e] of header.entries) {
    tensors.set(name, { dtype: e.dtype, shape: e.shape, data: typed(e.dtype, buf.subarray(dataStart + e.begin, dataStart + e.end)) });
  }
  return { tensors, entries: header.entries, metadata: header.metadata, dataStart };
}

// An incremental sha256 for readSafetensors: update() with the bytes in order (a
// promise when it has to wait for room), then digest() once, or close() to give up.
interface Hasher {
  update(bytes: Uint8Array): Promise<void> | undefined;
  digest(): Promise<string>;  // hex
  close(): void;
}

function inlineHasher(): Hasher {
  const h = createHash('sha256');
  return { update: (b) => void h.update(b), digest: () => Promise.resolve(h.digest('hex')), close: () => undefined };
}

// Words shared with the hashing thread (Int32, byte counts modulo 2^32): bytes written
// into the ring, bytes hashed, done (no more writes), a count bumped to wake the thread
// (what it waits on, so no wake-up is missed), and whether it sleeps. A wake-up is a
// system call: it is made once a batch of bytes is waiting, not for every chunk.
const WRITTEN = 0, HASHED = 1, DONE = 2, SEQ = 3, SLEEPING = 4;
const RING_BYTES = 8 << 20;  // divides 2^32, so a count modulo 2^32 still gives the ring position
const HASH_SLICE = 1 << 20;  // the thread frees ring space at least this often
const WAKE_BYTES = 1 << 20;
// Copies into shared memory go word by word only when source and target are aligned
// alike (else byte by byte, 5-10 times slower): misaligned bytes (a socket's chunks start
// anywhere) first go, in pieces this large, to a scratch buffer at the ring's alignment.
const SCRATCH_BYTES = 64 << 10;

const HASH_THREAD = `
const { parentPort, workerData } = require('worker_threads');
const h = require('crypto').createHash('sha256');
const ring = new Uint8Array(workerData.ring), ctl = new Int32Array(workerData.ctl), size = ring.length;
let hashed = 0;
for (;;) {
  const seq = Atomics.load(ctl, ${SEQ});
  const pending = (Atomics.load(ctl, ${WRITTEN}) - hashed) >>> 0;
  if (pending === 0) {
    if (Atomics.load(ctl, ${DONE}) !== 0) break;
    Atomics.store(ctl, ${SLEEPING}, 1);
    if (Atomics.load(ctl, ${SEQ}) === seq) Atomics.wait(ctl, ${SEQ}, seq);
    Atomics.store(ctl, ${SLEEPING}, 0);
    continue;
  }
  const at = hashed % size;
  const n = Math.min(pending, size - at, ${HASH_SLICE});
  h.update(ring.subarray(at, at + n));
  hashed = (hashed + n) >>> 0;
  Atomics.store(ctl, ${HASHED}, hashed | 0);
  Atomics.notify(ctl, ${HASHED});
}
parentPort.postMessage(h.digest('hex'));
`;

// sha256 on a worker thread, for large data: update() copies the bytes into a ring
// shared with the thread (a memcpy, a fraction of what hashing them costs) and returns,
// so the hashing runs beside the event loop's receiving and copying instead of after
// them. When the ring is full update() returns a promise (Atomics.waitAsync): the event
// loop is never blocked, and a thread that died is noticed.
function threadHasher(): Hasher {
  const ring = new Uint8Array(new SharedArrayBuffer(RING_BYTES));
  const ctl = new Int32Array(new SharedArrayBuffer(5 * 4));
  let worker: Worker;
  try {
    worker = new Worker(HASH_THREAD, { eval: true, workerData: { ring: ring.buffer, ctl: ctl.buffer } });
  } catch {
    return inlineHasher();  // no thread to be had (resource limits): hash here
  }
  worker.unref();
  let failed: Error | undefined;
  const digest = new Promise<string>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', (e) => reject(failed = e));
    worker.once('exit', (code) => reject(failed ??= new Error(`the sha256 thread exited (code ${code}) before its digest`)));
  });
  digest.catch(() => undefined);  // close() without digest(): nobody waits for it
  let written = 0;  // modulo 2^32, as the shared word
  let unannounced = 0;  // bytes written since the thread was last woken
  const scratch = new Uint8Array(SCRATCH_BYTES + 8);
  const wake = (now: boolean) => {
    if (!now && unannounced < WAKE_BYTES) return;
    unannounced = 0;
    Atomics.add(ctl, SEQ, 1);
    if (Atomics.load(ctl, SLEEPING) !== 0) Atomics.notify(ctl, SEQ);
  };
  const write = (bytes: Uint8Array, off: number): Promise<void> | undefined => {
    while (off < bytes.length) {
      if (failed) throw failed;
      const hashed = Atomics.load(ctl, HASHED);
      const free = RING_BYTES - ((written - hashed) >>> 0);
      if (free === 0) {
        wake(true);
        // Atomics.waitAsync: V8 since Node 16, typed by tsconfig's lib es2024.sharedmemory.
        return Promise.resolve(Atomics.waitAsync(ctl, HASHED, hashed, 1000).value).then(() => write(bytes, off));
      }
      const at = written % RING_BYTES;
      let n = Math.min(bytes.length - off, free, RING_BYTES - at);
      const align = at % 8;
      if ((bytes.byteOffset + off) % 8 === align) {
        ring.set(bytes.subarray(off, off + n), at);
      } else {
        n = Math.min(n, SCRATCH_BYTES);
        scratch.set(bytes.subarray(off, off + n), align);
        ring.set(scratch.subarray(align, align + n), at);
      }
      off += n;
      written = (written + n) >>> 0;
      unannounced += n;
      Atomics.store(ctl, WRITTEN, written | 0);
    }
    wake(false);
    return undefined;
  };
  return {
    update: (bytes) => write(bytes, 0),
    digest() {
      Atomics.store(ctl, DONE, 1);
      wake(true);
      return digest;
    },
    close: () => void worker.terminate(),
  };
}

// Data from this size on is hashed on a worker thread (threadHasher); less on the event
// loop, where starting the thread would cost more than it saves.
export const THREAD_HASH_BYTES = 32 << 20;

export interface ReadPlan {
  // Where tensors' bytes go as they arrive: per name, a buffer of exactly the tensor's
  // byte length (a view of the memory that should hold it). The others are kept in
  // buffers of their own.
  into?: Map<string, Uint8Array>;
  checksum?: boolean;  // compute the sha256 over the tensor bytes (dataChecksum's value)
}

export interface StreamedSafetensors extends Safetensors {
  size: number;       // bytes read: the file's size
  checksum?: string;  // 'sha256:<hex>' over the tensor bytes, when the plan asked for it
}

// Reads a safetensors file from a stream in one pass, without holding the whole file:
// once the header has arrived, plan(header) says where each tensor's bytes go (and may
// throw to stop reading: the stream is then destroyed), then the bytes are copied there
// as they arrive, hashed on the way when asked (large data on a worker thread, beside
// the event loop's receiving and copying). The same checks as decodeSafetensors: the
// header's when it arrives, bytes past the last tensor as soon as they come, and the
// data's length once the stream ends (a truncated stream is refused naming the first
// tensor it cuts). The tensors are views of the destinations.
export async function readSafetensors(stream: AsyncIterable<Uint8Array | string>, source: string, plan: (header: SafetensorsHeader) => ReadPlan = () => ({})): Promise<StreamedSafetensors> {
  const lengthBytes = Buffer.alloc(8);
  let headerBytes: Buffer | undefined;
  let filled = 0;  // bytes of lengthBytes, then of headerBytes, filled so far
  let header: SafetensorsHeader | undefined;
  let hash: Hasher | undefined;
  // The destinations, by where their bytes begin; next: the first one not yet complete.
  let targets: { name: string; begin: number; end: number; to: Uint8Array }[] = [];
  let next = 0;
  let size = 0;
  const data = (chunk: Uint8Array, at: number) => {  // chunk holds data-section bytes [at, at + length)
    const hashing = hash?.update(chunk);
    const stop = at + chunk.length;
    for (let i = next; i < targets.length && targets[i].begin < stop; i++) {
      const t = targets[i];
      const from = Math.max(t.begin, at), to = Math.min(t.end, stop);
      if (from < to) t.to.set(chunk.subarray(from - at, to - at), from - t.begin);
    }
    while (next < targets.length && targets[next].end <= stop) next++;
    return hashing;
  };
  const consume = (piece: Uint8Array | string): Promise<void> | undefined => {
    let chunk = typeof piece === 'string' ? Buffer.from(piece, 'utf8') : piece;
    const at = size;
    size += chunk.length;
    if (header) {
      checkDataLength(header, size - header.dataStart, source, false);
      return data(chunk, at - header.dataStart);
    }
    if (!headerBytes) {
      const n = Math.min(8 - filled, chunk.length);
      lengthBytes.set(chunk.subarray(0, n), filled);
      filled += n;
      chunk = chunk.subarray(n);
      if (filled < 8) return undefined;
      const headerLen = lengthBytes.readBigUInt64LE(0);
      if (headerLen > BigInt(MAX_HEADER_BYTES)) {
        throw new SafetensorsError(source, `header length ${headerLen} is over the limit of ${MAX_HEADER_BYTES} bytes`);
      }
      headerBytes = Buffer.allocUnsafe(Number(headerLen));
      filled = 0;
    }
    const n = Math.min(headerBytes.length - filled, chunk.length);
    headerBytes.set(chunk.subarray(0, n), filled);
    filled += n;
    chunk = chunk.subarray(n);
    if (filled < headerBytes.length) return undefined;
    header = parseHeader(headerBytes, source, 8 + headerBytes.length);
    // Large data: the hashing thread starts now, so it is up by the time the plan is made
    // (which may build a network); dropped if the plan wants no checksum.
    const thread = header.dataLength >= THREAD_HASH_BYTES ? threadHasher() : undefined;
    let p: ReadPlan;
    try {
      p = plan(header);
    } catch (e) {
      thread?.close();
      throw e;
    }
    if (p.checksum) hash = thread ?? inlineHasher();
    else thread?.close();
    for (const [name, e] of header.entries) {
      let to = p.into?.get(name);
      if (to && to.byteLength !== e.end - e.begin) {
        throw new RangeError(`${source}: the destination of tensor '${name}' has ${to.byteLength} bytes, the tensor ${e.end - e.begin}`);
      }
      to ??= new Uint8Array(e.end - e.begin);
      targets.push({ name, begin: e.begin, end: e.end, to });
    }
    targets = targets.sort((a, b) => a.begin - b.begin);
    checkDataLength(header, chunk.length, source, false);
    return chunk.length ? data(chunk, 0) : undefined;
  };
  try {
    for await (const piece of stream) {
      const waiting = consume(piece);
      if (waiting) await waiting;
    }
    if (!header) {
      if (!headerBytes) throw new SafetensorsError(source, `only ${size} bytes`);
      throw new SafetensorsError(source, `header length ${headerBytes.length} exceeds the file size ${size} (truncated?)`);
    }
    checkDataLength(header, size - header.dataStart, source);
    const byName = new Map(targets.map((t) => [t.name, t.to]));
    const tensors = new Map<string, Tensor>();
    for (const [name, e] of header.entries) tensors.set(name, { dtype: e.dtype, shape: e.shape, data: typed(e.dtype, byName.get(name)!) });
    const checksum = hash && 'sha256:' + await hash.digest();
    return { tensors, entries: header.entries, metadata: header.metadata, dataStart: header.dataStart, size, ...(checksum ? { checksum } : {}) };
  } finally {
    hash?.close();
  }
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
