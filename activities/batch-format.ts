// The batch file format: what preprocessing writes and training reads.
//
//   offset  size  field
//   0       4     magic "ALXB"
//   4       4     version (1)
//   8       4     count: images in the file
//   12      4     height
//   16      4     width
//   20      4     channels (3: RGB)
//   24      4     dtype of pixels (1: uint8)
//   28      4     header size in bytes (64)
//   32      8     pixel offset (64)
//   40      8     label offset (64 + count*height*width*channels)
//   48      4     CRC-32 of everything after the header (pixels, then labels)
//   52      12    reserved, zero
//   64      ...   pixels: uint8, image-major, each image H x W x C (interleaved RGB, as
//                 decoders produce it; training crops and converts to NCHW float)
//   ...     4*count  labels: int32 little-endian
//
// All integers little-endian. A reader checks magic, version, sizes against the file
// length and the checksum, so a truncated or corrupted file is refused by name; then
// checkBatch holds what it decoded against the dataset it belongs to (image count, size,
// RGB, labels among the classes), so a file that cannot train is refused before any step.
import { crc32 } from 'zlib';

export const BATCH_MAGIC = 'ALXB';
export const BATCH_VERSION = 1;
export const BATCH_HEADER_BYTES = 64;
const DTYPE_UINT8 = 1;

export interface Batch {
  count: number;
  height: number;
  width: number;
  channels: number;
  pixels: Uint8Array;  // count * height * width * channels
  labels: Int32Array;  // count
}

export class BatchFormatError extends Error {
  constructor(source: string, detail: string) {
    super(`batch file ${source} is invalid: ${detail}`);
    this.name = 'BatchFormatError';
  }
}

export function encodeBatch(b: Batch): Buffer {
  const pixelBytes = b.count * b.height * b.width * b.channels;
  if (b.pixels.length !== pixelBytes) throw new RangeError(`pixels has ${b.pixels.length} bytes, expected ${pixelBytes}`);
  if (b.labels.length !== b.count) throw new RangeError(`labels has ${b.labels.length} entries, expected ${b.count}`);
  const out = Buffer.alloc(BATCH_HEADER_BYTES + pixelBytes + 4 * b.count);
  out.write(BATCH_MAGIC, 0, 'latin1');
  out.writeUInt32LE(BATCH_VERSION, 4);
  out.writeUInt32LE(b.count, 8);
  out.writeUInt32LE(b.height, 12);
  out.writeUInt32LE(b.width, 16);
  out.writeUInt32LE(b.channels, 20);
  out.writeUInt32LE(DTYPE_UINT8, 24);
  out.writeUInt32LE(BATCH_HEADER_BYTES, 28);
  out.writeBigUInt64LE(BigInt(BATCH_HEADER_BYTES), 32);
  out.writeBigUInt64LE(BigInt(BATCH_HEADER_BYTES + pixelBytes), 40);
  out.set(b.pixels, BATCH_HEADER_BYTES);
  const labelBytes = new Uint8Array(b.labels.buffer, b.labels.byteOffset, b.labels.byteLength);
  out.set(labelBytes, BATCH_HEADER_BYTES + pixelBytes);  // little-endian hosts only (x86, arm64)
  out.writeUInt32LE(crc32(out.subarray(BATCH_HEADER_BYTES)), 48);
  return out;
}

export function decodeBatch(buf: Buffer, source: string): Batch {
  if (buf.length < BATCH_HEADER_BYTES) throw new BatchFormatError(source, `only ${buf.length} bytes (truncated?)`);
  if (buf.toString('latin1', 0, 4) !== BATCH_MAGIC) throw new BatchFormatError(source, 'wrong magic (not a batch file)');
  const version = buf.readUInt32LE(4);
  if (version !== BATCH_VERSION) throw new BatchFormatError(source, `version ${version}, this reader knows ${BATCH_VERSION}`);
  const count = buf.readUInt32LE(8);
  const height = buf.readUInt32LE(12);
  const width = buf.readUInt32LE(16);
  const channels = buf.readUInt32LE(20);
  if (buf.readUInt32LE(24) !== DTYPE_UINT8) throw new BatchFormatError(source, 'pixel dtype is not uint8');
  const pixelBytes = count * height * width * channels;
  const pixelOffset = Number(buf.readBigUInt64LE(32));
  const labelOffset = Number(buf.readBigUInt64LE(40));
  if (pixelOffset !== BATCH_HEADER_BYTES || labelOffset !== pixelOffset + pixelBytes || buf.length !== labelOffset + 4 * count) {
    throw new BatchFormatError(source, `sizes do not add up: ${count} images of ${height}x${width}x${channels} in ${buf.length} bytes (truncated?)`);
  }
  if (crc32(buf.subarray(BATCH_HEADER_BYTES)) !== buf.readUInt32LE(48)) throw new BatchFormatError(source, 'checksum mismatch (corrupted)');
  const pixels = new Uint8Array(buf.buffer, buf.byteOffset + pixelOffset, pixelBytes);
  const labels = new Int32Array(count);
  new Uint8Array(labels.buffer).set(buf.subarray(labelOffset, labelOffset + 4 * count));
  return { count, height, width, channels, pixels, labels };
}

// What one of a dataset's batch files must hold, from its manifest.
export interface BatchExpectation {
  images: number;     // the shard's image count (manifest splits[split].shardImages[i])
  imageSize: number;  // S: every image S x S
  classes: number;    // labels in 0..classes-1
}

// Refuses (BatchFormatError, naming the check) a well-formed file that does not belong to
// its dataset: another shard's count, no image, another size, not RGB, a label that is no
// class. Any of these would fail every attempt the same way (or, worse, train on garbage).
export function checkBatch(b: Batch, expect: BatchExpectation, source: string): void {
  if (b.count === 0) throw new BatchFormatError(source, 'it holds no image (count 0)');
  if (b.count !== expect.images) throw new BatchFormatError(source, `it holds ${b.count} images but the dataset manifest says ${expect.images}`);
  if (b.height !== expect.imageSize || b.width !== expect.imageSize) {
    throw new BatchFormatError(source, `its images are ${b.height}x${b.width} but the dataset's are ${expect.imageSize}x${expect.imageSize}`);
  }
  if (b.channels !== 3) throw new BatchFormatError(source, `its images have ${b.channels} channels, not 3 (RGB)`);
  for (let i = 0; i < b.count; i++) {
    const label = b.labels[i];
    if (label < 0 || label >= expect.classes) throw new BatchFormatError(source, `image ${i} has label ${label}, not a class of the dataset's ${expect.classes} (0..${expect.classes - 1})`);
  }
}
