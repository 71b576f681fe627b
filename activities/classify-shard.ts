// The activities of ClassifyImages (batch inference): plan (resolve the checkpoint once,
// list the source page by page into shard files under the output prefix), classify one
// shard into its part file, and check and sum the parts into summary.json.
//
// Files under the output prefix (predictionKeys):
//   shards/<i>.jsonl   the listing: {"key", "size"} per image, key order, shardSize a shard
//   part-<i>.jsonl     one line per listed image of shard i, in the same order:
//                      {"key", "top": [{"class", "name", "probability"}, ...]} when classified,
//                      {"key", "error"} when skipped (empty, truncated, not an image,
//                      decompression bomb, gone since the listing). Skipped files stay in
//                      the part, so each part holds every image of its shard exactly once.
//   features-<i>.safetensors  with `features`, written before the part: the classified
//                      images' features, in part order (activities/features.ts)
//   reports/<i>.json   written after the part: its checkpoint, listing digest and counts;
//                      a retried shard reuses a part whose report matches, else rewrites it
//   summary.json       written last (ClassifyImagesResult)
// Keys in the part files are relative to the source.
import { createHash } from 'crypto';

import { ApplicationFailure } from '@temporalio/common';

import type { ClassificationPlan, ClassifyImagesResult, FeatureLayer, ShardClassification, ShardFeatures } from '../common/contract';
import { inLanes } from '../common/lanes';
import { predictionKeys, runKeys } from '../common/store-layout';
import { activityWorkflowId, heartbeat, throwIfCancelled } from './activity-context';
import { classifyImages, type ClassPrediction, type ImageInput } from './classify';
import { isImageKey } from './datasets';
import { DECODE_CONCURRENCY } from './decode-image';
import { encodeFeatures, featureSize } from './features';
import { loadInferenceModel, resolveCheckpoint, type ResolvedCheckpoint } from './model';
import { holdCheckpoint, releaseCheckpoint } from './retention';
import { getJson, ObjectNotFoundError, openStore, validateKey, type ObjectStore } from './store';

const SKIPPED_SAMPLE = 50;          // per shard, back to the workflow
const SUMMARY_SKIPPED_FILES = 1000; // in summary.json
const CHUNK = 64;                   // images read, then classified, together

export interface ListedImage { key: string; size: number }
export type PartLine = { key: string; top: ClassPrediction[] } | { key: string; error: string };

interface PartReport extends Omit<ShardClassification, 'reused'> {
  checkpointKey: string;
  listing: string;   // sha256 of the shard's listing file
  topK: number;
  crops: 1 | 10;
}

// "corrupt or truncated JPEG", "empty file", "not an image", "too many pixels", ...
export function skipKind(reason: string): string {
  return reason.split(/[:(]/)[0].trim();
}

// Hidden files and folders (.DS_Store, ._x.jpg, .git/) and macOS archive debris are not listed.
function hidden(key: string): boolean {
  return key.split('/').some((s) => s.startsWith('.') || s === '__MACOSX');
}

function jsonLines<T>(text: string): T[] {
  return text.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as T);
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

// Heartbeats while `work` runs (a model streamed from S3 can take longer than the
// heartbeat timeout).
async function heartbeating<T>(details: unknown, work: () => Promise<T>): Promise<T> {
  heartbeat(details);
  const timer = setInterval(() => heartbeat(details), 10_000);
  try {
    return await work();
  } finally {
    clearInterval(timer);
  }
}

// Resolves the checkpoint (a key, or a run's serving.json, else latest.json) once, holds
// it against retention until the summary is written, and lists the source into shard
// files of `shardSize` keys (key order) under the output prefix, never holding the whole
// listing. Stale files of an earlier job under the same prefix (more shards, a summary)
// are removed, so what the prefix holds is this job's.
export async function planClassification(input: {
  store: string; source: string; checkpoint: string | { run: string }; output?: string; job: string; shardSize: number;
}): Promise<ClassificationPlan> {
  const store = openStore(input.store);
  const source = openStore(input.source);
  const given = typeof input.checkpoint === 'string' ? { checkpoint: input.checkpoint } : { run: input.checkpoint.run };
  let resolved: ResolvedCheckpoint = await resolveCheckpoint(store, given);
  const holder = activityWorkflowId();
  if (holder) {
    await holdCheckpoint(store, resolved.runId, holder, resolved.key);
    // Pruned between reading latest.json and the hold: the run moved on; take its newest.
    if (!(await store.head(resolved.key))) {
      if (resolved.from === 'checkpoint') throw ApplicationFailure.nonRetryable(`checkpoint ${resolved.key} was deleted (checkpoint retention) while this classification started`, 'CheckpointMissing');
      resolved = await resolveCheckpoint(store, given);
      await holdCheckpoint(store, resolved.runId, holder, resolved.key);
    }
  }
  const output = input.output ?? runKeys(resolved.runId).predictions(input.job);
  const keys = predictionKeys(output);
  validateKey(keys.summary);  // InvalidKeyError (non-retryable) for a prefix no key can have

  let shards = 0;
  let images = 0;
  let lines: string[] = [];
  const flush = async () => {
    await store.put(keys.shard(shards++), lines.join('\n') + '\n');
    lines = [];
    heartbeat({ listed: images, shards });
  };
  for await (const o of source.list('')) {
    if (!isImageKey(o.key) || hidden(o.key)) continue;
    lines.push(JSON.stringify({ key: o.key, size: o.size }));
    images++;
    if (lines.length === input.shardSize) await flush();
  }
  if (lines.length > 0) await flush();
  if (images === 0) {
    throw ApplicationFailure.nonRetryable(`no images under ${source.uri} (files ending in .jpg, .jpeg, .png, .gif, .webp, .tif, .tiff or .bmp, at any depth)`, 'NoImages');
  }
  // An earlier job under this prefix: its extra shards, parts, features, reports and summary go.
  const stale = /^(?:shards\/|part-|reports\/|features-)(\d+)\.(?:json|safetensors)/;
  for await (const o of store.list(keys.root)) {
    const rel = o.key.slice(keys.root.length);
    const m = stale.exec(rel);
    if ((m && Number(m[1]) >= shards) || o.key === keys.summary) await store.delete(o.key);
  }
  return { checkpointKey: resolved.key, runId: resolved.runId, output: keys.root, shards, images };
}

// Reads the images of [from, to) a few at a time; one that vanished since the listing is
// answered with its reason. Other read errors fail the attempt (retried: a store hiccup
// must not turn into skipped images).
async function readImages(source: ObjectStore, listed: ListedImage[], from: number, to: number): Promise<(ImageInput | { image: string; error: string })[]> {
  const out: (ImageInput | { image: string; error: string })[] = new Array(to - from);
  await inLanes(to - from, DECODE_CONCURRENCY, async (j) => {
    const { key } = listed[from + j];
    try {
      out[j] = { image: key, data: await source.get(key) };
    } catch (e) {
      if (!(e instanceof ObjectNotFoundError)) throw e;
      out[j] = { image: key, error: 'gone: the object was deleted after the listing' };
    }
  });
  return out;
}

// Classifies shard `shard` of the plan into part-<shard>.jsonl (one line per listed
// image, in listing order) and its report. A part whose report names the same
// checkpoint, listing, topK and crops is reused (a retry after the write).
export async function classifyShard(input: {
  store: string; source: string; output: string; shard: number; checkpointKey: string;
  topK: number; crops: 1 | 10; device?: 'cpu' | 'cuda'; threads?: number; features?: FeatureLayer;
}): Promise<ShardClassification> {
  const t0 = Date.now();
  const store = openStore(input.store);
  const keys = predictionKeys(input.output);
  const listingText = (await store.get(keys.shard(input.shard))).toString('utf8');
  const listing = sha256(listingText);
  const listed = jsonLines<ListedImage>(listingText);
  const partKey = keys.part(input.shard);
  const reportKey = keys.partReport(input.shard);
  const featuresKey = keys.features(input.shard);
  if (await store.head(reportKey)) {
    const r = await getJson<PartReport>(store, reportKey);
    if (r.checkpointKey === input.checkpointKey && r.listing === listing && r.topK === input.topK && r.crops === input.crops && await store.head(partKey)
      && r.features?.layer === input.features && (!input.features || await store.head(featuresKey))) {
      return { shard: r.shard, images: r.images, skipped: r.skipped, skippedByReason: r.skippedByReason, skippedSample: r.skippedSample, seconds: r.seconds, reused: true, ...(r.features ? { features: r.features } : {}) };
    }
  }
  const model = await heartbeating({ shard: input.shard, loading: input.checkpointKey }, () => loadInferenceModel({
    store: input.store, checkpoint: input.checkpointKey, device: input.device, threads: input.threads,
  }));
  const source = openStore(input.source);
  const lines: string[] = new Array(listed.length);
  // With features: the classified images' keys and vectors, in listing order.
  const featureKeys: string[] = [];
  const vectors: Float32Array[] = [];
  const report: PartReport = {
    shard: input.shard, images: 0, skipped: 0, skippedByReason: {}, skippedSample: [], seconds: 0,
    checkpointKey: input.checkpointKey, listing, topK: input.topK, crops: input.crops,
  };
  const skip = (i: number, key: string, reason: string) => {
    lines[i] = JSON.stringify({ key, error: reason });
    report.skipped++;
    const kind = skipKind(reason);
    report.skippedByReason[kind] = (report.skippedByReason[kind] ?? 0) + 1;
    if (report.skippedSample.length < SKIPPED_SAMPLE) report.skippedSample.push({ key, reason });
  };
  // The next chunk is read while this one is classified.
  let reading = readImages(source, listed, 0, Math.min(CHUNK, listed.length));
  for (let from = 0; from < listed.length; from += CHUNK) {
    const to = Math.min(from + CHUNK, listed.length);
    const chunk = await reading;
    if (to < listed.length) {
      reading = readImages(source, listed, to, Math.min(to + CHUNK, listed.length));
      reading.catch(() => undefined);  // awaited next round; a failure then fails the attempt
    }
    throwIfCancelled();
    const readable: { index: number; image: ImageInput }[] = [];
    chunk.forEach((c, j) => {
      if ('error' in c) skip(from + j, c.image, c.error);
      else readable.push({ index: from + j, image: c });
    });
    const answers = await classifyImages(model, readable.map((r) => r.image), { topK: input.topK, crops: input.crops, features: input.features });
    answers.forEach((a, j) => {
      const i = readable[j].index;
      if ('error' in a) skip(i, a.image, a.error);
      else {
        lines[i] = JSON.stringify({ key: a.image, top: a.top });
        report.images++;
        if (a.features) {
          featureKeys.push(a.image);
          vectors.push(a.features);
        }
      }
    });
    heartbeat({ shard: input.shard, done: to, of: listed.length });
  }
  // The features and the part first, the report last: a report exists only beside a whole
  // part (and its features). A part classified without features drops an earlier job's.
  if (input.features) {
    const dimensions = featureSize(model.net.config, input.features);
    const all = new Float32Array(vectors.length * dimensions);
    vectors.forEach((v, r) => all.set(v, r * dimensions));
    await store.put(featuresKey, encodeFeatures({
      layer: input.features, checkpoint: input.checkpointKey, runId: model.checkpoint.runId, dimensions, keys: featureKeys, vectors: all,
    }));
    report.features = { layer: input.features, vectors: vectors.length, dimensions };
  } else if (await store.head(featuresKey)) {
    await store.delete(featuresKey);
  }
  await store.put(partKey, lines.join('\n') + '\n');
  report.seconds = (Date.now() - t0) / 1000;
  await store.put(reportKey, JSON.stringify(report));
  return { shard: report.shard, images: report.images, skipped: report.skipped, skippedByReason: report.skippedByReason, skippedSample: report.skippedSample, seconds: report.seconds, reused: false, ...(report.features ? { features: report.features } : {}) };
}

// Reads every part against its listing shard: each listed image exactly once, in order,
// classified or skipped; the parts of the plan's checkpoint; the listing's total equal to
// the plan's count (CountMismatch otherwise). Writes summary.json and releases the
// checkpoint's hold. wallSeconds: first shard started to last shard done.
export async function writeClassificationSummary(input: {
  store: string; source: string; plan: ClassificationPlan; topK: number; crops: 1 | 10; createdAt: string; wallSeconds: number; features?: FeatureLayer;
}): Promise<ClassifyImagesResult> {
  const store = openStore(input.store);
  const { plan } = input;
  const keys = predictionKeys(plan.output);
  const mismatch = (message: string) => ApplicationFailure.nonRetryable(message, 'CountMismatch');
  let listedTotal = 0;
  let images = 0;
  let skipped = 0;
  const skippedByReason: Record<string, number> = {};
  const skippedFiles: { key: string; reason: string }[] = [];
  let features: ShardFeatures | undefined = input.features && { layer: input.features, vectors: 0, dimensions: 0 };
  for (let i = 0; i < plan.shards; i++) {
    const partKey = keys.part(i);
    if (!(await store.head(partKey)) || !(await store.head(keys.partReport(i)))) throw new Error(`classification part ${partKey} (or its report) is missing: the shard was not classified`);
    const report = await getJson<PartReport>(store, keys.partReport(i));
    if (report.checkpointKey !== plan.checkpointKey) throw mismatch(`${partKey} was classified with ${report.checkpointKey}, not ${plan.checkpointKey}`);
    const listed = jsonLines<ListedImage>((await store.get(keys.shard(i))).toString('utf8'));
    const lines = jsonLines<PartLine>((await store.get(partKey)).toString('utf8'));
    const classifiedBefore = images;
    listedTotal += listed.length;
    if (lines.length !== listed.length) throw mismatch(`${partKey} has ${lines.length} lines but its shard lists ${listed.length} images`);
    lines.forEach((line, j) => {
      if (line.key !== listed[j].key) throw mismatch(`${partKey} line ${j + 1} is ${JSON.stringify(line.key)}, but the shard lists ${JSON.stringify(listed[j].key)} there`);
      if ('top' in line && Array.isArray(line.top)) images++;
      else if ('error' in line && typeof line.error === 'string') {
        skipped++;
        const kind = skipKind(line.error);
        skippedByReason[kind] = (skippedByReason[kind] ?? 0) + 1;
        if (skippedFiles.length < SUMMARY_SKIPPED_FILES) skippedFiles.push({ key: line.key, reason: line.error });
      } else {
        throw mismatch(`${partKey} line ${j + 1} (${JSON.stringify(line.key)}) has neither "top" nor "error"`);
      }
    });
    if (features) {
      // Its report counts the vectors of the features file written before it.
      const f = report.features;
      if (f?.layer !== features.layer || f.vectors !== images - classifiedBefore || !(await store.head(keys.features(i)))) {
        throw mismatch(`${keys.features(i)} should hold ${features.layer} features of the part's ${images - classifiedBefore} classified images, but its report says ${JSON.stringify(f ?? 'none')}`);
      }
      features = { ...features, vectors: features.vectors + f.vectors, dimensions: f.dimensions };
    }
    heartbeat({ summed: i + 1, of: plan.shards });
  }
  if (listedTotal !== plan.images || images + skipped !== plan.images) {
    throw mismatch(`classification counted ${images} classified + ${skipped} skipped = ${images + skipped} images in ${listedTotal} listed, but the listing had ${plan.images}`);
  }
  const seconds = input.wallSeconds;
  const summary: ClassifyImagesResult = {
    images, skipped, listed: plan.images, skippedByReason, skippedFiles, parts: plan.shards,
    output: keys.root, summaryKey: keys.summary, checkpoint: plan.checkpointKey, runId: plan.runId, source: input.source,
    topK: input.topK, crops: input.crops, seconds, imagesPerSecond: seconds > 0 ? images / seconds : 0, createdAt: input.createdAt,
    ...(features ? { features } : {}),
  };
  await store.put(keys.summary, JSON.stringify(summary, null, 1));
  // The summary names the checkpoint now: the job's hold on it can go.
  const holder = activityWorkflowId();
  if (holder) await releaseCheckpoint(store, plan.runId, holder);
  return summary;
}
