// Scoring a checkpoint on prepared images, shared by the epoch's validation and
// EvaluateAlexNet: the network a worker keeps per checkpoint, the (crop-averaged)
// softmax, and where the true class ranks.
import { ApplicationFailure } from '@temporalio/common';

import { augmentCenter, augmentTenCrop } from '../native/augment';
import { Network } from '../native/index';
import { CHECKPOINT_KEY_FORM, parseCheckpointKey } from '../common/store-layout';
import type { Batch } from './batch-format';
import { readCheckpointNetwork } from './model';
import type { ObjectStore } from './store';

// One worker evaluates many shards of the same checkpoint: keep the last network loaded
// (its calls queue, so concurrent activities share it safely).
let cachedNet: { key: string; threads?: number; net: Promise<Network> } | undefined;

export function loadEvaluationNetwork(store: ObjectStore, key: string, threads?: number): Promise<Network> {
  if (cachedNet?.key === key && cachedNet.threads === threads && cachedNet.net) return cachedNet.net;
  // Streamed into the network's memory, its sha256 checked on the way and its config
  // against the run's run.json (as inference loads).
  const runId = parseCheckpointKey(key)?.runId;
  if (!runId) return Promise.reject(ApplicationFailure.nonRetryable(`'${key}' is not a checkpoint key (${CHECKPOINT_KEY_FORM})`, 'InvalidInput'));
  const net = (async () => (await readCheckpointNetwork(store, { key, runId, from: 'checkpoint' }, { threads })).net)();
  cachedNet = { key, threads, net };
  net.catch(() => { if (cachedNet?.net === net) cachedNet = undefined; });
  return net;
}

// Softmax of each row of `logits` (rows x classes), averaged over groups of `group` rows.
export function averagedSoftmax(logits: Float32Array, rows: number, classes: number, group: number): Float64Array {
  const out = new Float64Array((rows / group) * classes);
  for (let r = 0; r < rows; r++) {
    const row = logits.subarray(r * classes, (r + 1) * classes);
    let max = -Infinity;
    for (let k = 0; k < classes; k++) max = Math.max(max, row[k]);
    let sum = 0;
    for (let k = 0; k < classes; k++) sum += Math.exp(row[k] - max);
    const o = Math.floor(r / group) * classes;
    for (let k = 0; k < classes; k++) out[o + k] += Math.exp(row[k] - max) / sum / group;
  }
  return out;
}

// How many classes score above the true one (ties count against us): 0 is a top-1 hit,
// under 5 a top-5 hit.
export function classesAbove(scores: ArrayLike<number>, offset: number, classes: number, label: number): number {
  const target = scores[offset + label];
  let higher = 0;
  for (let k = 0; k < classes; k++) {
    const v = scores[offset + k];
    if (v > target || (v === target && k < label)) higher++;
  }
  return higher;
}

// The (crop-averaged) softmax of every image of one batch file, in chunks of about
// batchSize patches per forward: onChunk(probs (n, classes), labels (n)) per chunk. The
// scoring both the epoch's validation and EvaluateAlexNet use.
export async function scoreBatch(net: Network, b: Batch, key: string, mean: Float32Array, crops: 1 | 10, batchSize: number, onChunk: (probs: Float64Array, labels: Int32Array) => void): Promise<void> {
  const classes = net.config.classes;
  const crop = net.config.input.height;
  if (b.height < crop) throw ApplicationFailure.nonRetryable(`${key} holds ${b.height}x${b.width} images, smaller than the network's ${crop}x${crop} input`, 'InvalidInput');
  const bad = b.labels.findIndex((l) => l < 0 || l >= classes);
  if (bad >= 0) throw ApplicationFailure.nonRetryable(`${key}: label ${b.labels[bad]} outside the checkpoint's ${classes} classes: evaluate with the dataset the model was trained on`, 'InvalidInput');
  const imageBytes = b.height * b.width * b.channels;
  const perForward = Math.max(1, Math.floor(batchSize / crops));
  for (let start = 0; start < b.count; start += perForward) {
    const n = Math.min(perForward, b.count - start);
    const pixels = b.pixels.subarray(start * imageBytes, (start + n) * imageBytes);
    const x = crops === 10 ? await augmentTenCrop(pixels, n, b.height, crop, { mean }) : await augmentCenter(pixels, n, b.height, crop, { mean });
    onChunk(averagedSoftmax(await net.predict(x), n * crops, classes, crops), b.labels.subarray(start, start + n));
  }
}
