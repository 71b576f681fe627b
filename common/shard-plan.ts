// The shard plan: a deterministic seeded shuffle of a split's images, cut into shards of
// `shardSize`. Pure: the same images (in any order) and seed give the same shards.
// It runs inside an activity (ImageNet's listing is far too large for a workflow
// payload) but lives here with the other pure decision logic, unit-tested without servers.

import { seededRandom, shuffleInPlace } from './shuffle';

export interface SourceImage {
  key: string;    // relative to the dataset root
  label: number;  // class index
}

export interface Shard {
  index: number;
  images: SourceImage[];
}

export function planShards(images: readonly SourceImage[], options: { seed: number; shardSize: number }): Shard[] {
  const { seed, shardSize } = options;
  if (!Number.isInteger(shardSize) || shardSize < 1) throw new RangeError(`shardSize must be a positive integer, got ${shardSize}`);
  // Sort first: the plan must not depend on the order a store listed the keys in.
  const order = [...images].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  for (let i = 1; i < order.length; i++) {
    if (order[i].key === order[i - 1].key) throw new Error(`duplicate image key '${order[i].key}' in the listing`);
  }
  shuffleInPlace(order, seededRandom(seed));
  const shards: Shard[] = [];
  for (let start = 0, index = 0; start < order.length; start += shardSize, index++) {
    shards.push({ index, images: order.slice(start, start + shardSize) });
  }
  return shards;
}
