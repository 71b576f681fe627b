// The activities of PrepareDataset: shard planning, per-shard preprocessing into batch
// files, and the merge of statistics into the dataset manifest. Each one is idempotent:
// re-running a finished step finds its verified output and returns the same result.
import { createHash } from 'crypto';

import { ApplicationFailure } from '@temporalio/common';

import { planShards, Shard, SourceImage } from '../common/shard-plan';
import type { CarvedValidation, DatasetManifest, PreprocessShardInput, ResizeKernel, ShardSummary, SplitSummary } from '../common/contract';
import { heartbeat, throwIfCancelled } from './activity-context';
import { checkBatch, decodeBatch, encodeBatch } from './batch-format';
import { DECODE_CONCURRENCY, DEFAULT_MAX_PIXELS, decodeToRgb, ImageSkip } from './decode-image';
import { addImages, decodeSums, emptySums, encodeSums, finalizeStats, mergeSums } from '../native/image-stats';
import { encodeSafetensors, tensor } from '../native/safetensors';
import { getJson, openStore, ObjectStore } from './store';
import { datasetKeys } from '../common/store-layout';
import { inLanes } from '../common/lanes';

// At most this many skipped/converted entries travel back through Temporal; the shard
// report in the store has them all.
const SUMMARY_LIST_LIMIT = 20;

async function readListing(store: ObjectStore, key: string): Promise<SourceImage[]> {
  const text = (await store.get(key)).toString('utf8');
  return text.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as SourceImage);
}

export async function planDatasetShards(input: { store: string; name: string; split: string; seed: number; shardSize: number }): Promise<SplitSummary> {
  const store = openStore(input.store);
  const keys = datasetKeys(input.name);
  const images = await readListing(store, keys.listing(input.split));
  const shards = planShards(images, { seed: input.seed, shardSize: input.shardSize });
  for (const shard of shards) {
    await store.put(keys.shard(input.split, shard.index), JSON.stringify(shard));
    if (shard.index % 50 === 0) heartbeat({ split: input.split, shard: shard.index });
  }
  return { split: input.split, images: images.length, shards: shards.length };
}

export interface ShardReport extends ShardSummary {
  resizeKernel?: ResizeKernel;
  plan?: string;  // planDigest of the shard it was made from (absent in older reports)
  skipped: { key: string; reason: string }[];
  converted: { key: string; note: string }[];
}

// What a shard holds (its images and labels, in order): a re-prepare with another seed,
// shard size or validation carve plans other shards under the same keys, and a report
// made from another plan must not be reused.
function planDigest(shard: Shard): string {
  return createHash('sha256').update(JSON.stringify(shard.images)).digest('hex');
}

// Reuses a finished shard: its report was made from this shard plan and its batch file verifies.
async function finishedShard(store: ObjectStore, input: PreprocessShardInput, shard: Shard): Promise<ShardReport | undefined> {
  const keys = datasetKeys(input.name);
  const reportKey = keys.shardReport(input.split, input.shard);
  if (!(await store.head(reportKey))) return undefined;
  const report = await getJson<ShardReport>(store, reportKey);
  if (report.plan !== planDigest(shard)) return undefined;
  try {
    const batch = decodeBatch(await store.get(report.batchKey), report.batchKey);
    // The plan's labels, less the skipped images', in order: what this shard's file holds.
    const skipped = new Set(report.skipped.map((s) => s.key));
    const labels = shard.images.filter((img) => !skipped.has(img.key)).map((img) => img.label);
    checkBatch(batch, { images: labels.length, imageSize: input.imageSize, classes: Infinity }, report.batchKey);
    if (batch.count !== report.images || labels.some((label, i) => batch.labels[i] !== label)) return undefined;
    if ((report.resizeKernel ?? 'lanczos3') !== (input.resizeKernel ?? 'lanczos3')) return undefined;
    if (!(await store.head(keys.shardStats(input.split, input.shard)))) return undefined;
  } catch {
    return undefined;  // a partial or corrupt output is redone, never taken as finished
  }
  return report;
}

function shardSummary(report: ShardReport): ShardSummary {
  const { skipped, converted, ...rest } = report;
  delete (rest as Partial<ShardReport>).plan;  // the workflow has no use for it
  return { ...rest, skippedSample: skipped.slice(0, SUMMARY_LIST_LIMIT), convertedCount: converted.length };
}

export async function preprocessShard(input: PreprocessShardInput): Promise<ShardSummary> {
  const t0 = Date.now();
  const store = openStore(input.store);
  const source = openStore(input.dataset);
  const keys = datasetKeys(input.name);
  const shard = await getJson<Shard>(store, keys.shard(input.split, input.shard));
  const done = await finishedShard(store, input, shard);
  if (done) return shardSummary({ ...done, reused: true });

  const size = input.imageSize;
  const results: ({ pixels: Buffer; label: number; note?: string } | { skip: string })[] = new Array(shard.images.length);
  let finished = 0;
  await inLanes(shard.images.length, DECODE_CONCURRENCY, async (i) => {
    throwIfCancelled();
    const img = shard.images[i];
    let data: Buffer;
    try {
      data = await source.get(img.key);
    } catch (e) {
      results[i] = { skip: `unreadable object: ${(e as Error).message}` };
      return;
    }
    try {
      const { pixels, note } = await decodeToRgb(data, size, input.maxPixels ?? DEFAULT_MAX_PIXELS, input.resizeKernel ?? 'lanczos3');
      results[i] = { pixels, label: img.label, note };
    } catch (e) {
      if (!(e instanceof ImageSkip)) throw e;
      results[i] = { skip: e.reason };
    }
    if (++finished % 64 === 0) heartbeat({ shard: input.shard, done: finished });
  });

  const good = results.filter((r): r is { pixels: Buffer; label: number; note?: string } => 'pixels' in r);
  const imageBytes = size * size * 3;
  const pixels = new Uint8Array(good.length * imageBytes);
  const labels = new Int32Array(good.length);
  good.forEach((r, i) => {
    pixels.set(r.pixels, i * imageBytes);
    labels[i] = r.label;
  });
  const sums = emptySums(size, size);
  await addImages(sums, pixels, good.length);
  const report: ShardReport = {
    split: input.split,
    shard: input.shard,
    images: good.length,
    batchKey: keys.batch(input.split, input.shard),
    skippedCount: 0,
    skipped: [],
    converted: [],
    seconds: 0,
    reused: false,
    resizeKernel: input.resizeKernel ?? 'lanczos3',
    plan: planDigest(shard),
  };
  results.forEach((r, i) => {
    const key = shard.images[i].key;
    if ('skip' in r) report.skipped.push({ key, reason: r.skip });
    else if (r.note) report.converted.push({ key, note: r.note });
  });
  report.skippedCount = report.skipped.length;
  // Batch and statistics first, the report last: a report exists only for a whole shard.
  await store.put(report.batchKey, encodeBatch({ count: good.length, height: size, width: size, channels: 3, pixels, labels }));
  await store.put(keys.shardStats(input.split, input.shard), encodeSums(sums));
  report.seconds = (Date.now() - t0) / 1000;
  await store.put(keys.shardReport(input.split, input.shard), JSON.stringify(report, null, 1));
  return shardSummary(report);
}

// Merges the training split's statistics (the mean image and RGB PCA come from the
// training set only) and writes stats.json, mean.safetensors and manifest.json.
export async function finalizeDataset(input: { dataset: string; store: string; name: string; imageSize: number; seed: number; shardSize: number; splits: SplitSummary[]; trainSplit: string; resizeKernel?: ResizeKernel; carvedValidation?: CarvedValidation }): Promise<DatasetManifest> {
  const store = openStore(input.store);
  const keys = datasetKeys(input.name);
  const splits: DatasetManifest['splits'] = {};
  for (const s of input.splits) {
    let images = 0;
    let skipped = 0;
    const skippedByReason: Record<string, number> = {};
    const shardImages: number[] = [];
    for (let i = 0; i < s.shards; i++) {
      const r = await getJson<ShardReport>(store, keys.shardReport(s.split, i));
      images += r.images;
      shardImages.push(r.images);
      skipped += r.skippedCount;
      for (const { reason } of r.skipped) {
        const kind = reason.split(/[:(]/)[0].trim();  // "corrupt or truncated JPEG", "empty file", ...
        skippedByReason[kind] = (skippedByReason[kind] ?? 0) + 1;
      }
    }
    splits[s.split] = { shards: s.shards, images, skipped, listed: s.images, skippedByReason, shardImages };
  }
  const train = splits[input.trainSplit];
  if (!train || train.images === 0) {
    throw ApplicationFailure.nonRetryable(`dataset ${input.dataset} has no valid image in split '${input.trainSplit}' (${train?.skipped ?? 0} skipped; see ${keys.root}/reports/)`, 'NoValidImages');
  }
  const sums = emptySums(input.imageSize, input.imageSize);
  for (let i = 0; i < train.shards; i++) {
    const key = keys.shardStats(input.trainSplit, i);
    mergeSums(sums, decodeSums(await store.get(key), key));
    heartbeat({ merged: i });
  }
  const { stats, meanImage } = finalizeStats(sums);
  await store.put(keys.meanImage, encodeSafetensors({ mean: tensor('F32', [input.imageSize, input.imageSize, 3], meanImage) }, { layout: 'HWC', units: 'pixel values 0..255' }));
  await store.put(keys.stats, JSON.stringify({ ...stats, meanImageKey: keys.meanImage }, null, 1));
  const classes = await getJson<string[]>(store, keys.classes);
  const manifest: DatasetManifest = {
    name: input.name,
    source: input.dataset,
    imageSize: input.imageSize,
    seed: input.seed,
    shardSize: input.shardSize,
    classes: classes.length,
    splits,
    statsKey: keys.stats,
    createdAt: new Date().toISOString(),
    resizeKernel: input.resizeKernel ?? 'lanczos3',
    ...(input.carvedValidation ? { carvedValidation: input.carvedValidation } : {}),
  };
  await store.put(keys.manifest, JSON.stringify({ ...manifest, classNames: classes }, null, 1));
  return manifest;
}
