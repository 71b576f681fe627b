// The server's work on one batch: image files (decoded exactly as classifyImages does:
// shorter side to S with the run's kernel, central SxS; then the centre crop or the
// paper's ten patches, the mean image subtracted) and preprocessed tensors (the centre
// crop in 0..255 RGB, NCHW: the server subtracts the mean image's centre crop, the same
// numbers augmentCenter gives), scored by one forward per group of at most
// PATCHES_PER_FORWARD patches and the (crop-averaged) softmax of scoreBatch. Decoding runs
// on libuv's pool (sharp), the crops and the forward on the native threads.
import { DECODE_CONCURRENCY, DEFAULT_MAX_PIXELS, decodeToRgb, ImageSkip } from '../../activities/decode-image';
import type { InferenceModel } from '../../activities/model';
import { averagedSoftmax } from '../../activities/scoring';
import { inLanes } from '../../common/lanes';
import { augmentCenter, augmentTenCrop } from '../../native/augment';
import { centerCropMean } from '../../native/onnx';

export type Job =
  | { kind: 'image'; data: Buffer; crops: 1 | 10 }   // an image file
  | { kind: 'tensor'; pixels: Float32Array };         // (3, crop, crop) RGB in 0..255

// Every class's probability (class-index order), or why the image could not be read.
export type Scored = { probabilities: Float64Array } | { error: string };

// Patches per forward (classifyImages' default batch size).
export const PATCHES_PER_FORWARD = 128;

// The mean image's centre crop as (3, crop, crop), the layout of a tensor input (the same
// numbers the ONNX export subtracts in its graph).
const meanCrops = new WeakMap<Float32Array, Map<number, Float32Array>>();
export function meanCrop(model: Pick<InferenceModel, 'mean' | 'imageSize' | 'crop'>): Float32Array {
  let byCrop = meanCrops.get(model.mean);
  if (!byCrop) meanCrops.set(model.mean, (byCrop = new Map()));
  let out = byCrop.get(model.crop);
  if (!out) byCrop.set(model.crop, (out = centerCropMean(model.mean, model.imageSize, model.crop)));
  return out;
}

function concatPixels(images: Buffer[], imageBytes: number): Uint8Array {
  const pixels = new Uint8Array(images.length * imageBytes);
  images.forEach((p, j) => pixels.set(p, j * imageBytes));
  return pixels;
}

export async function scoreJobs(model: InferenceModel, jobs: Job[]): Promise<Scored[]> {
  const S = model.imageSize, C = model.crop, K = model.net.config.classes;
  const patch = 3 * C * C, imageBytes = S * S * 3;
  const results: Scored[] = new Array(jobs.length);
  const pixels: Buffer[] = new Array(jobs.length);
  const files = jobs.flatMap((j, i) => (j.kind === 'image' ? [i] : []));
  await inLanes(files.length, DECODE_CONCURRENCY, async (f) => {
    const i = files[f];
    try {
      pixels[i] = (await decodeToRgb((jobs[i] as { data: Buffer }).data, S, DEFAULT_MAX_PIXELS, model.resizeKernel)).pixels;
    } catch (e) {
      if (!(e instanceof ImageSkip)) throw e;
      results[i] = { error: e.reason };
    }
  });
  const centre = jobs.flatMap((j, i) => (j.kind === 'image' && j.crops === 1 && pixels[i] ? [i] : []));
  const tensors = jobs.flatMap((j, i) => (j.kind === 'tensor' ? [i] : []));
  const tenCrop = jobs.flatMap((j, i) => (j.kind === 'image' && j.crops === 10 && pixels[i] ? [i] : []));
  const assign = (rows: number[], probs: Float64Array) => rows.forEach((i, r) => { results[i] = { probabilities: probs.slice(r * K, (r + 1) * K) }; });

  // One patch per image: centre crops of the files, then the tensors, in one forward.
  const single = [...centre, ...tensors];
  for (let start = 0; start < single.length; start += PATCHES_PER_FORWARD) {
    const rows = single.slice(start, start + PATCHES_PER_FORWARD);
    const x = new Float32Array(rows.length * patch);
    const files1 = rows.filter((i) => jobs[i].kind === 'image');
    if (files1.length > 0) {
      await augmentCenter(concatPixels(files1.map((i) => pixels[i]), imageBytes), files1.length, S, C, { mean: model.mean, out: x.subarray(0, files1.length * patch) });
    }
    const m = meanCrop(model);
    rows.slice(files1.length).forEach((i, r) => {
      const t = (jobs[i] as { pixels: Float32Array }).pixels;
      const o = (files1.length + r) * patch;
      for (let k = 0; k < patch; k++) x[o + k] = t[k] - m[k];
    });
    assign(rows, averagedSoftmax(await model.net.predict(x), rows.length, K, 1));
  }
  // The paper's ten patches, softmax averaged over them.
  const perForward = Math.max(1, Math.floor(PATCHES_PER_FORWARD / 10));
  for (let start = 0; start < tenCrop.length; start += perForward) {
    const rows = tenCrop.slice(start, start + perForward);
    const x = await augmentTenCrop(concatPixels(rows.map((i) => pixels[i]), imageBytes), rows.length, S, C, { mean: model.mean });
    assign(rows, averagedSoftmax(await model.net.predict(x), rows.length * 10, K, 10));
  }
  return results;
}
