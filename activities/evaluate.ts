// The evaluation activities of EvaluateAlexNet: resolve which checkpoint and which split
// (latest.json is read when the workflow starts, never taken from a stale argument),
// evaluate one shard (centre crop, or the paper's ten patches with the softmax averaged)
// into a partial result in the store, and merge the partials into the report.
//
// Every image is counted exactly once: the shard is the unit of work, each shard's
// partial has one key, a retried shard overwrites (or reuses) that same key, and the
// merge reads each shard index once and checks the total against the manifest.
import { ApplicationFailure } from '@temporalio/common';

import { defaultEvaluationSplit, type EpochMetrics, type EvaluateAlexNetResult, type EvaluationReport, type ShardEvaluation } from '../common/contract';
import { activityWorkflowId, heartbeat } from './activity-context';
import { readBatches } from './batch-reader';
import { readLatest } from './checkpoint';
import { readClassNames, readManifest, readMeanImage } from './dataset-files';
import { renderReport } from './report-render';
import { classesAbove, loadEvaluationNetwork, scoreBatch } from './scoring';
import { holdCheckpoint, releaseCheckpoint } from './retention';
import { getJson, openStore, ObjectStore } from './store';
import { CHECKPOINT_KEY_FORM, datasetKeys, parseCheckpointKey, reportKeys, runKeys } from '../common/store-layout';

const CONFUSION_MAX_CLASSES = 100;

export interface EvaluationPlan {
  checkpointKey: string;
  runId: string;
  epoch: number;
  batch: number;
  split: string;
  shards: number;
  images: number;
  classes: number;
  imageSize: number;
}

// The checkpoint (a key, or a run's newest via latest.json) and the split to evaluate.
export async function planEvaluation(input: { store: string; checkpoint: string | { run: string }; datasetName: string; split?: string }): Promise<EvaluationPlan> {
  const store = openStore(input.store);
  let key: string;
  let runId: string;
  if (typeof input.checkpoint === 'string') {
    key = input.checkpoint;
    const parsed = parseCheckpointKey(key);
    if (!parsed) throw ApplicationFailure.nonRetryable(`checkpoint '${key}' is not a checkpoint key (${CHECKPOINT_KEY_FORM}); pass {"run": "<runId>"} for a run's newest`, 'InvalidInput');
    runId = parsed.runId;
    if (!(await store.head(key))) throw ApplicationFailure.nonRetryable(`checkpoint ${key} does not exist in ${store.uri}`, 'CheckpointMissing');
  } else {
    runId = input.checkpoint.run;
    const latest = await readLatest(store, runId);
    if (!latest) throw ApplicationFailure.nonRetryable(`run '${runId}' has no checkpoint in ${store.uri} (no ${runKeys(runId).latest}): train it first (TrainAlexNet)`, 'CheckpointMissing');
    key = latest.key;
  }
  // Hold the checkpoint against retention until the report names it (writeEvaluationReport).
  const holder = activityWorkflowId();
  if (holder) {
    await holdCheckpoint(store, runId, holder, key);
    // Pruned between reading latest.json and the hold: the run moved on; take its newest.
    if (!(await store.head(key))) {
      if (typeof input.checkpoint === 'string') throw ApplicationFailure.nonRetryable(`checkpoint ${key} was deleted (checkpoint retention) while this evaluation started`, 'CheckpointMissing');
      key = (await readLatest(store, runId))!.key;
      await holdCheckpoint(store, runId, holder, key);
    }
  }
  const cursor = parseCheckpointKey(key);
  const manifest = await readManifest(store, input.datasetName);
  const names = Object.keys(manifest.splits);
  const split = input.split ?? defaultEvaluationSplit(names, manifest.carvedValidation !== undefined);
  if (!split || !manifest.splits[split]) {
    throw ApplicationFailure.nonRetryable(`dataset '${input.datasetName}' has no split '${input.split ?? 'val or test'}': it has ${names.join(', ')}`, 'InvalidInput');
  }
  const s = manifest.splits[split];
  return {
    checkpointKey: key, runId, epoch: cursor?.epoch ?? 0, batch: cursor?.batch ?? 0,
    split, shards: s.shards, images: s.images, classes: manifest.classes, imageSize: manifest.imageSize,
  };
}

function emptyShard(shard: number, classes: number): ShardEvaluation {
  return {
    shard, images: 0, lossSum: 0, top1Errors: 0, top5Errors: 0,
    classImages: new Array(classes).fill(0), classTop1Correct: new Array(classes).fill(0), classTop5Correct: new Array(classes).fill(0),
    confusion: classes <= CONFUSION_MAX_CLASSES ? Array.from({ length: classes }, () => new Array(classes).fill(0)) : undefined,
    seconds: 0,
  };
}

// Evaluates one shard's batch file and writes the partial result. A partial of the same
// checkpoint already there (a retry after the write) is reused.
export async function evaluateShard(input: { store: string; datasetName: string; split: string; shard: number; checkpointKey: string; crops: 1 | 10; batchSize: number; reportPrefix: string; threads?: number }): Promise<{ shard: number; images: number; seconds: number }> {
  const t0 = Date.now();
  const store = openStore(input.store);
  const out = reportKeys(input.reportPrefix).partial(input.split, input.shard);
  if (await store.head(out)) {
    const done = await getJson<ShardEvaluation & { checkpointKey: string }>(store, out);
    if (done.checkpointKey === input.checkpointKey) return { shard: done.shard, images: done.images, seconds: done.seconds };
  }
  const [net, mean, manifest] = await Promise.all([loadEvaluationNetwork(store, input.checkpointKey, input.threads), readMeanImage(store, input.datasetName), readManifest(store, input.datasetName)]);
  const classes = net.config.classes;
  const result = emptyShard(input.shard, classes);
  const batchKey = datasetKeys(input.datasetName).batch(input.split, input.shard);
  const images = manifest.splits[input.split]?.shardImages[input.shard];
  if (images === undefined) throw ApplicationFailure.nonRetryable(`dataset '${input.datasetName}' has no shard ${input.shard} of split '${input.split}'`, 'InvalidInput');
  const expect = () => ({ images, imageSize: manifest.imageSize, classes: manifest.classes });
  for await (const b of readBatches(store, [batchKey], { prefetch: 0, expect })) {
    await scoreBatch(net, b, batchKey, mean, input.crops, input.batchSize, (probs, labels) => {
      labels.forEach((label, i) => {
        const higher = classesAbove(probs, i * classes, classes, label);
        result.lossSum += -Math.log(Math.max(probs[i * classes + label], 1e-30));
        result.classImages[label]++;
        if (higher === 0) result.classTop1Correct[label]++;
        else result.top1Errors++;
        if (higher < 5) result.classTop5Correct[label]++;
        else result.top5Errors++;
        if (result.confusion) result.confusion[label][argmax(probs, i * classes, classes)]++;
      });
      result.images += labels.length;
      heartbeat({ shard: input.shard, images: result.images });
    });
  }
  result.seconds = (Date.now() - t0) / 1000;
  await store.put(out, JSON.stringify({ ...result, checkpointKey: input.checkpointKey, model: net.config.name ?? 'custom' }));
  return { shard: input.shard, images: result.images, seconds: result.seconds };
}

function argmax(values: ArrayLike<number>, offset: number, n: number): number {
  let best = 0;
  for (let k = 1; k < n; k++) if (values[offset + k] > values[offset + best]) best = k;
  return best;
}

// Sums the shards' partials (each index once), checks the count against the manifest,
// and writes report.json, report.md and report.html under the report prefix.
// wallSeconds: from the first shard's start to the last one's end, as the workflow saw it.
export async function writeEvaluationReport(input: { store: string; datasetName: string; plan: EvaluationPlan; crops: 1 | 10; reportPrefix: string; createdAt: string; wallSeconds?: number }): Promise<EvaluateAlexNetResult> {
  const store = openStore(input.store);
  const { plan } = input;
  const total = emptyShard(-1, plan.classes);
  let model = '';
  for (let shard = 0; shard < plan.shards; shard++) {
    const key = reportKeys(input.reportPrefix).partial(plan.split, shard);
    if (!(await store.head(key))) throw new Error(`evaluation partial ${key} is missing: the shard was not evaluated`);
    const p = await getJson<ShardEvaluation & { checkpointKey: string; model: string }>(store, key);
    model = p.model;
    if (p.checkpointKey !== plan.checkpointKey) throw new Error(`${key} evaluates ${p.checkpointKey}, not ${plan.checkpointKey}`);
    total.images += p.images;
    total.lossSum += p.lossSum;
    total.top1Errors += p.top1Errors;
    total.top5Errors += p.top5Errors;
    total.seconds += p.seconds;
    for (let k = 0; k < plan.classes; k++) {
      total.classImages[k] += p.classImages[k] ?? 0;
      total.classTop1Correct[k] += p.classTop1Correct[k] ?? 0;
      total.classTop5Correct[k] += p.classTop5Correct[k] ?? 0;
      if (total.confusion && p.confusion) for (let j = 0; j < plan.classes; j++) total.confusion[k][j] += p.confusion[k][j];
    }
  }
  if (total.images !== plan.images) {
    throw ApplicationFailure.nonRetryable(`evaluation counted ${total.images} images but split '${plan.split}' has ${plan.images}`, 'CountMismatch');
  }
  const names = await readClassNames(store, input.datasetName, plan.classes);
  const report: EvaluationReport = {
    runId: plan.runId, checkpointKey: plan.checkpointKey, epoch: plan.epoch, batch: plan.batch, model,
    dataset: input.datasetName, split: plan.split, crops: input.crops, images: total.images, shards: plan.shards,
    loss: total.lossSum / total.images,
    top1Error: total.top1Errors / total.images, top5Error: total.top5Errors / total.images,
    top1Accuracy: 1 - total.top1Errors / total.images, top5Accuracy: 1 - total.top5Errors / total.images,
    perClass: names.map((name, index) => ({
      index, name, images: total.classImages[index],
      top1Accuracy: total.classImages[index] ? total.classTop1Correct[index] / total.classImages[index] : 0,
      top5Accuracy: total.classImages[index] ? total.classTop5Correct[index] / total.classImages[index] : 0,
    })),
    confusion: total.confusion,
    imagesPerSecond: total.images / (input.wallSeconds ?? total.seconds),
    seconds: input.wallSeconds ?? total.seconds,
    createdAt: input.createdAt,
  };
  const rendered = await renderReport(report, await readEpochMetrics(store, plan.runId));
  const { json, markdown, html } = reportKeys(input.reportPrefix);
  await store.put(json, rendered.json);
  await store.put(markdown, rendered.markdown);
  await store.put(html, rendered.html);
  // The report names the checkpoint now: the evaluation's hold on it can go.
  const holder = activityWorkflowId();
  if (holder) await releaseCheckpoint(store, input.plan.runId, holder);
  return {
    reportKeys: { json, markdown, html }, checkpointKey: plan.checkpointKey, images: report.images,
    top1Error: report.top1Error, top5Error: report.top5Error, top1Accuracy: report.top1Accuracy, top5Accuracy: report.top5Accuracy,
    seconds: report.seconds,
  };
}

export async function readEpochMetrics(store: ObjectStore, runId: string): Promise<EpochMetrics[]> {
  const key = runKeys(runId).metrics;
  if (!(await store.head(key))) return [];
  return (await store.get(key)).toString('utf8').split('\n').filter((l) => l.trim())
    .map((l) => JSON.parse(l) as { kind: string })
    .filter((r): r is EpochMetrics => r.kind === 'epoch')
    .sort((a, b) => a.epoch - b.epoch);
}
