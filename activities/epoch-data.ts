// The order in which an epoch visits the training images, and the mini-batches it makes.
// Each epoch shuffles the order of the shards and the images inside each shard, seeded
// by (seed, epoch): a pure function of the cursor, so a resumed epoch sees exactly the
// batches the interrupted one would have, and no image is trained twice or skipped.
// Shuffling within shards (not across all images) keeps reads sequential: one batch file
// at a time, prefetched, however large the data set.
import { seededRandom, shuffleInPlace } from '../common/shuffle';
import type { BatchExpectation } from './batch-format';
import { readBatches } from './batch-reader';
import type { ObjectStore } from './store';

function permutation(n: number, seed: number): number[] {
  return shuffleInPlace(Array.from({ length: n }, (_, i) => i), seededRandom(seed));
}

// A 32-bit mix of the parts, for per-(epoch, shard) seeds.
function mixSeed(...parts: number[]): number {
  let h = 0x811c9dc5;
  for (const p of parts) {
    h = Math.imul(h ^ (p >>> 0), 0x01000193) >>> 0;
    h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d) >>> 0;
  }
  return h;
}

export interface EpochPlan {
  shardOrder: number[];  // shard indices in visiting order
  counts: number[];      // images per shard (indexed by shard)
  batchSize: number;
  batches: number;       // full mini-batches in the epoch (the remainder is dropped)
}

export function epochPlan(counts: number[], options: { seed: number; epoch: number; batchSize: number }): EpochPlan {
  const total = counts.reduce((a, b) => a + b, 0);
  return {
    shardOrder: permutation(counts.length, mixSeed(options.seed, options.epoch)),
    counts,
    batchSize: options.batchSize,
    batches: Math.floor(total / options.batchSize),
  };
}

export function imageOrder(seed: number, epoch: number, shard: number, count: number): number[] {
  return permutation(count, mixSeed(seed, epoch, shard + 1));
}

export interface MiniBatch {
  index: number;       // batch index within the epoch
  pixels: Uint8Array;  // (B, S, S, 3)
  labels: Int32Array;  // (B)
  size: number;        // S
}

// Mini-batches from `startBatch` to the end of the epoch, reading the shards' batch files
// (keys by shard index) in plan order with prefetch, each checked against the dataset
// (its image count from the plan; `expect`: S and the classes).
export async function* miniBatches(store: ObjectStore, batchKeys: string[], plan: EpochPlan, options: { seed: number; epoch: number; startBatch: number; prefetch?: number; expect: Omit<BatchExpectation, 'images'> }): AsyncGenerator<MiniBatch> {
  const B = plan.batchSize;
  let position = 0;  // global image position at the start of the current shard
  let firstShard = 0;
  const skip = options.startBatch * B;
  while (firstShard < plan.shardOrder.length && position + plan.counts[plan.shardOrder[firstShard]] <= skip) {
    position += plan.counts[plan.shardOrder[firstShard]];
    firstShard++;
  }
  const shards = plan.shardOrder.slice(firstShard);
  let index = options.startBatch;
  let pixels: Uint8Array | undefined;
  let labels = new Int32Array(B);
  let filled = 0;
  let imageBytes = 0;
  let size = 0;
  let s = 0;
  const expect = (i: number) => ({ ...options.expect, images: plan.counts[shards[i]] });
  for await (const batch of readBatches(store, shards.map((i) => batchKeys[i]), { prefetch: options.prefetch ?? 2, expect })) {
    const shard = shards[s++];
    if (!pixels) {
      size = batch.height;
      imageBytes = batch.height * batch.width * batch.channels;
      pixels = new Uint8Array(B * imageBytes);
    }
    const order = imageOrder(options.seed, options.epoch, shard, batch.count);
    const from = Math.max(0, skip - position);  // only the first shard may start inside
    for (let k = from; k < order.length; k++) {
      if (index >= plan.batches) return;
      const i = order[k];
      pixels.set(batch.pixels.subarray(i * imageBytes, (i + 1) * imageBytes), filled * imageBytes);
      labels[filled++] = batch.labels[i];
      if (filled === B) {
        yield { index: index++, pixels, labels, size };
        pixels = new Uint8Array(B * imageBytes);  // the consumer may still hold the last one
        labels = new Int32Array(B);
        filled = 0;
      }
    }
    position += batch.count;
  }
}
