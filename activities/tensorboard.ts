// TensorBoard event files for a training run, under runs/<run>/tensorboard/ in the store
// (docs/formats.md#tensorboard-event-files-runsrunidtensorboard).
//
// The format, written here by hand (four protobuf messages and TFRecord framing are a
// few lines; no maintained package writes them without TensorFlow): a file is a sequence
// of TFRecords (uint64 length, masked CRC-32C of the length, the data, masked CRC-32C of
// the data, little-endian), each an `Event` protobuf; the first says file_version
// "brain.Event:2". TensorBoard itself reads them in the tests (EventAccumulator), which
// checks both CRCs of every record.
//
// Object stores have no append, so no file grows: trainEpoch buffers the points of the
// batches since its last checkpoint and writes them as one whole file just before the
// checkpoint, named by the range's first batch. An attempt that dies between two
// checkpoints leaves nothing of that range; the next one trains exactly those batches
// again (bitwise identically) and writes the same points under the same name, so nothing
// is duplicated or lost. Key order is step order, which is the order TensorBoard reads
// a folder's files in.
import sharp from 'sharp';

import { runKeys } from '../common/store-layout';
import type { Network } from '../native/index';
import { maskedCrc32c } from './crc32c';
import type { ObjectStore } from './store';

export const TENSORBOARD_TAGS = {
  trainLoss: 'train/loss',
  trainLr: 'train/lr',
  trainImagesPerSecond: 'train/images_per_second',
  valTop1Error: 'val/top1_error',
  valTop5Error: 'val/top5_error',
  checkpointSeconds: 'checkpoint/seconds',
  kernels: (layer: string) => `${layer}/kernels`,
} as const;

// The step of a batch: epoch * batchesPerEpoch + the batch's index in its epoch (0-based),
// the same in every attempt. batchesPerEpoch is fixed for a run (full mini-batches of the
// train split).
export function globalStep(epoch: number, batchesPerEpoch: number, batchIndex: number): number {
  return epoch * batchesPerEpoch + batchIndex;
}

export interface ScalarValue { tag: string; value: number }
export interface ImageValue { tag: string; png: Buffer; width: number; height: number }

// One Event with a Summary: any number of scalars and images at one step.
export interface SummaryEvent {
  step: number;
  wallTime: number;  // seconds since the epoch
  scalars?: ScalarValue[];
  images?: ImageValue[];
}

// Protobuf's wire format, for the fields Event needs: varints, doubles, floats and
// length-delimited bytes (strings and sub-messages).
class ProtoWriter {
  private readonly parts: Buffer[] = [];

  private varint(value: number): void {
    const bytes: number[] = [];
    let v = value;
    while (v >= 0x80) {
      bytes.push((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    bytes.push(v);
    this.parts.push(Buffer.from(bytes));
  }

  private key(field: number, wireType: 0 | 1 | 2 | 5): void {
    this.varint(field * 8 + wireType);
  }

  uint(field: number, value: number): this {
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`protobuf field ${field}: ${value} is not a non-negative integer`);
    this.key(field, 0);
    this.varint(value);
    return this;
  }

  double(field: number, value: number): this {
    this.key(field, 1);
    const b = Buffer.alloc(8);
    b.writeDoubleLE(value);
    this.parts.push(b);
    return this;
  }

  float(field: number, value: number): this {
    this.key(field, 5);
    const b = Buffer.alloc(4);
    b.writeFloatLE(value);
    this.parts.push(b);
    return this;
  }

  bytes(field: number, value: Buffer | string): this {
    const b = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
    this.key(field, 2);
    this.varint(b.length);
    this.parts.push(b);
    return this;
  }

  finish(): Buffer {
    return Buffer.concat(this.parts);
  }
}

// Field numbers from TensorFlow's event.proto and summary.proto.
const EVENT = { wallTime: 1, step: 2, fileVersion: 3, summary: 5 };
const SUMMARY = { value: 1 };
const VALUE = { tag: 1, simpleValue: 2, image: 4 };
const IMAGE = { height: 1, width: 2, colorspace: 3, encodedImageString: 4 };
const RGB_COLORSPACE = 3;
export const FILE_VERSION = 'brain.Event:2';

export function encodeEvent(event: SummaryEvent): Buffer {
  const summary = new ProtoWriter();
  for (const s of event.scalars ?? []) summary.bytes(SUMMARY.value, new ProtoWriter().bytes(VALUE.tag, s.tag).float(VALUE.simpleValue, s.value).finish());
  for (const i of event.images ?? []) {
    const image = new ProtoWriter().uint(IMAGE.height, i.height).uint(IMAGE.width, i.width).uint(IMAGE.colorspace, RGB_COLORSPACE)
      .bytes(IMAGE.encodedImageString, i.png).finish();
    summary.bytes(SUMMARY.value, new ProtoWriter().bytes(VALUE.tag, i.tag).bytes(VALUE.image, image).finish());
  }
  return new ProtoWriter().double(EVENT.wallTime, event.wallTime).uint(EVENT.step, event.step).bytes(EVENT.summary, summary.finish()).finish();
}

function encodeFileVersion(wallTime: number): Buffer {
  return new ProtoWriter().double(EVENT.wallTime, wallTime).bytes(EVENT.fileVersion, FILE_VERSION).finish();
}

// One TFRecord: length, its masked CRC-32C, the data, the data's masked CRC-32C.
export function tfRecord(data: Buffer): Buffer {
  const head = Buffer.alloc(12);
  head.writeBigUInt64LE(BigInt(data.length), 0);
  head.writeUInt32LE(maskedCrc32c(head.subarray(0, 8)), 8);
  const tail = Buffer.alloc(4);
  tail.writeUInt32LE(maskedCrc32c(data), 0);
  return Buffer.concat([head, data, tail]);
}

// A whole event file: the file_version event, then the events in order.
export function encodeEventFile(events: readonly SummaryEvent[], wallTime = Date.now() / 1000): Buffer {
  return Buffer.concat([tfRecord(encodeFileVersion(wallTime)), ...events.map((e) => tfRecord(encodeEvent(e)))]);
}

// The kernels of a convolution (weights OIHW: out, in, kh, kw) as one RGB PNG: a grid of
// tiles, each kernel scaled to its own range (as the paper's Figure 3; a shared range
// would leave most kernels grey), enlarged by whole pixels so that an 11x11 or 3x3 kernel
// is visible, with black gaps. Three input channels are shown as RGB, others as their mean.
export async function kernelGridPng(weights: Float32Array, shape: readonly number[], tag: string): Promise<ImageValue> {
  const [count, channels, kh, kw] = shape;
  if (shape.length !== 4 || weights.length !== count * channels * kh * kw) throw new RangeError(`kernelGridPng: weights of ${weights.length} values do not have the shape [${shape.join(', ')}]`);
  const zoom = Math.max(1, Math.round(32 / Math.max(kh, kw)));
  const gap = 2;
  const cols = Math.ceil(Math.sqrt(count));
  const rows = Math.ceil(count / cols);
  const [tileW, tileH] = [kw * zoom, kh * zoom];
  const width = cols * (tileW + gap) + gap;
  const height = rows * (tileH + gap) + gap;
  const pixels = Buffer.alloc(width * height * 3);
  const plane = kh * kw;
  for (let o = 0; o < count; o++) {
    const kernel = weights.subarray(o * channels * plane, (o + 1) * channels * plane);
    let lo = Infinity, hi = -Infinity;
    for (const w of kernel) {
      lo = Math.min(lo, w);
      hi = Math.max(hi, w);
    }
    const scale = hi > lo ? 255 / (hi - lo) : 0;
    const channel = (c: number, i: number) => (channels === 3 ? kernel[c * plane + i] : meanOverChannels(kernel, channels, plane, i));
    const x0 = gap + (o % cols) * (tileW + gap);
    const y0 = gap + Math.floor(o / cols) * (tileH + gap);
    for (let y = 0; y < tileH; y++) {
      for (let x = 0; x < tileW; x++) {
        const i = Math.floor(y / zoom) * kw + Math.floor(x / zoom);
        const at = ((y0 + y) * width + x0 + x) * 3;
        for (let c = 0; c < 3; c++) pixels[at + c] = scale ? Math.round((channel(c, i) - lo) * scale) : 128;
      }
    }
  }
  const png = await sharp(pixels, { raw: { width, height, channels: 3 } }).png().toBuffer();
  return { tag, png, width, height };
}

// The network's first convolution's kernels (conv1's): what it learnt to look for first.
// A copy of the weights is taken at once, so the network may train on meanwhile.
export async function firstConvKernels(net: Network): Promise<ImageValue | undefined> {
  const conv = net.config.layers.find((l) => l.type === 'conv');
  const param = conv && net.params.find((p) => p.name === `${conv.name}.weight`);
  if (!conv || !param) return undefined;
  return kernelGridPng(Float32Array.from(net.weight(param.name)), param.shape, TENSORBOARD_TAGS.kernels(conv.name));
}

function meanOverChannels(kernel: Float32Array, channels: number, plane: number, i: number): number {
  let sum = 0;
  for (let c = 0; c < channels; c++) sum += kernel[c * plane + i];
  return sum / channels;
}

// Writes one event file whole. Events are a view on training, never a reason for it to
// fail: a failed write becomes a warning (in the epoch's metrics, like retention's).
export async function putEventFile(store: ObjectStore, key: string, events: readonly SummaryEvent[], warnings: string[]): Promise<void> {
  try {
    await store.put(key, encodeEventFile(events));
  } catch (e) {
    warnings.push(`TensorBoard events ${key} not written (${(e as Error).message}); training goes on without them`);
  }
}

// What trainEpoch reports each step.
export interface StepScalars { loss: number; lr: number; imagesPerSecond: number }

// One epoch's event files as trainEpoch writes them: the points of the batches since the
// last checkpoint, buffered (a few numbers per step, nothing written per step), then
// flush() just before each checkpoint writes them as one file, and checkpointed() after
// it records how long the checkpoint took, in a file of its own (written only once the
// checkpoint exists: a checkpoint that never completes has no time).
//
// A zombie attempt (one a newer attempt of the epoch has replaced) writes nothing:
// `isNewestAttempt` says so. The newest attempt rewrites every range from where it
// started, and a zombie that checkpoints at another batch could otherwise replace a range
// with a shorter one.
export class EpochEvents {
  private pending: SummaryEvent[] = [];
  private firstBatch: number;

  constructor(
    private readonly store: ObjectStore,
    private readonly runId: string,
    private readonly epoch: number,
    private readonly batchesPerEpoch: number,
    startBatch: number,
    private readonly isNewestAttempt: () => Promise<boolean>,
    private readonly warnings: string[],
  ) {
    this.firstBatch = startBatch;
  }

  private step(batchIndex: number): number {
    return globalStep(this.epoch, this.batchesPerEpoch, batchIndex);
  }

  // The scalars of the batch with index batchIndex (0-based in the epoch).
  trained(batchIndex: number, s: StepScalars): void {
    this.pending.push({
      step: this.step(batchIndex), wallTime: Date.now() / 1000,
      scalars: [
        { tag: TENSORBOARD_TAGS.trainLoss, value: s.loss },
        { tag: TENSORBOARD_TAGS.trainLr, value: s.lr },
        { tag: TENSORBOARD_TAGS.trainImagesPerSecond, value: s.imagesPerSecond },
      ],
    });
  }

  // An image at the step of the last batch trained (the epoch's end: conv1's kernels).
  image(batchIndex: number, image: ImageValue): void {
    this.pending.push({ step: this.step(batchIndex), wallTime: Date.now() / 1000, images: [image] });
  }

  // Writes the buffered range (the batches from firstBatch to nextBatch - 1), before the
  // checkpoint at nextBatch is taken; the next range starts there.
  async flush(nextBatch: number): Promise<void> {
    const events = this.pending;
    const first = this.firstBatch;
    this.pending = [];
    this.firstBatch = nextBatch;
    if (!events.length || !(await this.newest())) return;
    await putEventFile(this.store, runKeys(this.runId).trainEvents(this.epoch, first), events, this.warnings);
  }

  // The checkpoint at cursor `batch` took `seconds`: a point at the step of the last
  // batch it holds.
  async checkpointed(batch: number, seconds: number): Promise<void> {
    if (!(await this.newest())) return;
    const event = { step: Math.max(0, this.step(batch - 1)), wallTime: Date.now() / 1000, scalars: [{ tag: TENSORBOARD_TAGS.checkpointSeconds, value: seconds }] };
    await putEventFile(this.store, runKeys(this.runId).checkpointEvents(this.epoch, batch), [event], this.warnings);
  }

  private async newest(): Promise<boolean> {
    try {
      return await this.isNewestAttempt();
    } catch (e) {
      this.warnings.push(`TensorBoard events of epoch ${this.epoch}: cannot tell whether this attempt is still the newest (${(e as Error).message}); its events are not written`);
      return false;
    }
  }
}

// The validation of an epoch's end, at the epoch's last step, as its own small file
// (written by appendMetrics with the epoch's metrics line, so a retry rewrites it whole).
export async function putValidationEvents(
  store: ObjectStore, runId: string, epoch: number, batchesPerEpoch: number,
  validation: { top1Error: number; top5Error: number }, warnings: string[],
): Promise<void> {
  const event: SummaryEvent = {
    step: globalStep(epoch, batchesPerEpoch, batchesPerEpoch - 1), wallTime: Date.now() / 1000,
    scalars: [{ tag: TENSORBOARD_TAGS.valTop1Error, value: validation.top1Error }, { tag: TENSORBOARD_TAGS.valTop5Error, value: validation.top5Error }],
  };
  await putEventFile(store, runKeys(runId).validationEvents(epoch), [event], warnings);
}
