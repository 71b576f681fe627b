// Classifying new images with an inference model: exactly evaluation's preprocessing
// (decode, shorter side to S with the run's kernel, central SxS; centre crop or the
// paper's ten patches, mean image subtracted) and scoring (scoreBatch: the softmax,
// averaged over the crops), so an image classified here gets the probabilities
// EvaluateAlexNet's scoring gives it. A file that cannot be read is answered with its
// reason; the others are still classified. With `features`, the same forward also gives
// each image's features: a layer's post-ReLU activations (activities/features.ts).
import type { FeatureLayer } from '../common/contract';
import { inLanes } from '../common/lanes';
import { ArgumentError } from '../common/validate';
import { augmentCenter } from '../native/augment';
import type { Batch } from './batch-format';
import { DECODE_CONCURRENCY, DEFAULT_MAX_PIXELS, decodeToRgb, ImageSkip } from './decode-image';
import type { InferenceModel } from './model';
import { averagedSoftmax, scoreBatch } from './scoring';

export interface ClassPrediction {
  class: string;        // the class id (folder name, wnid)
  name: string;         // its human-readable name
  probability: number;
}

export type ImagePrediction =
  | { image: string; top: ClassPrediction[]; features?: Float32Array }
  | { image: string; error: string };

export interface ClassifyOptions {
  topK?: number;        // default 5 (at most the number of classes)
  crops?: 1 | 10;       // default 1
  batchSize?: number;   // patches per forward (default 128)
  maxPixels?: number;   // decompression-bomb guard (default 100M pixels)
  // Each classified image's features too (the centre crop's: crops must be 1).
  features?: FeatureLayer;
}

export interface ImageInput {
  image: string;        // how the answer names it (a path, a key, a request id)
  data: Buffer;
}

// The k most probable classes of one row, most probable first (ties by class index).
export function topClasses(probs: Float64Array, offset: number, classes: number, k: number, model: Pick<InferenceModel, 'classIds' | 'classNames'>): ClassPrediction[] {
  const order = Array.from({ length: classes }, (_, i) => i).sort((a, b) => probs[offset + b] - probs[offset + a] || a - b);
  return order.slice(0, Math.min(k, classes)).map((c) => ({ class: model.classIds[c], name: model.classNames[c], probability: probs[offset + c] }));
}

// scoreBatch's centre-crop scoring (crop, mean subtracted, softmax) with the layer's
// features of the same forward: onChunk(probs (n, classes), features (n, size), size).
async function scoreWithFeatures(model: InferenceModel, b: Batch, layer: FeatureLayer, batchSize: number, onChunk: (probs: Float64Array, features: Float32Array, size: number) => void): Promise<void> {
  const imageBytes = b.height * b.width * b.channels;
  for (let start = 0; start < b.count; start += batchSize) {
    const n = Math.min(batchSize, b.count - start);
    const x = await augmentCenter(b.pixels.subarray(start * imageBytes, (start + n) * imageBytes), n, b.height, model.crop, { mean: model.mean });
    const { logits, features, size } = await model.net.features(x, layer);
    onChunk(averagedSoftmax(logits, n, model.net.config.classes, 1), features, size);
  }
}

export async function classifyImages(model: InferenceModel, images: ImageInput[], options: ClassifyOptions = {}): Promise<ImagePrediction[]> {
  const size = model.imageSize;
  const topK = options.topK ?? 5;
  const crops = options.crops ?? 1;
  if (options.features && crops !== 1) throw new ArgumentError('crops', `Expected crops 1 with features (they are the centre crop's) but received ${crops}`);
  const answers: ImagePrediction[] = new Array(images.length);
  const decoded: { index: number; pixels: Buffer }[] = [];
  await inLanes(images.length, DECODE_CONCURRENCY, async (i) => {
    try {
      const { pixels } = await decodeToRgb(images[i].data, size, options.maxPixels ?? DEFAULT_MAX_PIXELS, model.resizeKernel);
      decoded.push({ index: i, pixels });
    } catch (e) {
      if (!(e instanceof ImageSkip)) throw e;
      answers[i] = { image: images[i].image, error: e.reason };
    }
  });
  if (decoded.length > 0) {
    decoded.sort((a, b) => a.index - b.index);
    const imageBytes = size * size * 3;
    const pixels = new Uint8Array(decoded.length * imageBytes);
    decoded.forEach((d, j) => pixels.set(d.pixels, j * imageBytes));
    const batch = { count: decoded.length, height: size, width: size, channels: 3, pixels, labels: new Int32Array(decoded.length) };
    const classes = model.net.config.classes;
    let next = 0;
    if (options.features) {
      await scoreWithFeatures(model, batch, options.features, options.batchSize ?? 128, (probs, features, width) => {
        for (let r = 0; r < probs.length / classes; r++, next++) {
          const i = decoded[next].index;
          answers[i] = { image: images[i].image, top: topClasses(probs, r * classes, classes, topK, model), features: features.slice(r * width, (r + 1) * width) };
        }
      });
    } else {
      await scoreBatch(model.net, batch, 'request', model.mean, crops, options.batchSize ?? 128, (probs, labels) => {
        for (let r = 0; r < labels.length; r++, next++) {
          const i = decoded[next].index;
          answers[i] = { image: images[i].image, top: topClasses(probs, r * classes, classes, topK, model) };
        }
      });
    }
  }
  return answers;
}
