// The training activities: create a run (the initial checkpoint), train one epoch from
// the newest valid checkpoint (resuming mid-epoch at the exact batch), validate a
// checkpoint (centre crop, top-1/top-5), and append metrics. Everything a retry needs is
// in the store: latest.json and the checkpoints; heartbeats only report progress.
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';

import { augmentTrain, paperPcaValues } from '../native/augment';
import { modelConfig, NetConfig, Network, NonFiniteLossError } from '../native/index';
import { DEFAULT_MAX_FAILURES_PER_CHECKPOINT, TRAINING_STATE_SIGNAL } from '../workflows/shared';
import type { DatasetManifest, EpochResult, TrainEpochInput, ValidationResult } from '../workflows/shared';
import { activityAttempt, cancellationSignal, heartbeat, pausedByOperator, signalOwnWorkflow, workerStopping } from './activity-context';
import { readBatches } from './batch-reader';
import { loadNewestCheckpoint, readLatest, saveCheckpoint } from './checkpoint';
import { epochPlan, miniBatches } from './epoch-data';
import { pruneCheckpoints } from './retention';
import type { DatasetStats } from './image-stats';
import { readManifest, readMeanImage } from './dataset-files';
import { classesAbove, loadEvaluationNetwork, scoreBatch } from './evaluate';
import { getJson, openStore, ObjectStore } from './store';
import { datasetKeys, runKeys } from './store-layout';

interface DataStats {
  manifest: DatasetManifest;
  mean: Float32Array;         // (S, S, 3)
  pcaVectors: Float32Array;   // (3, 3)
  pcaValues: Float32Array;    // (3) lambda_i of the paper's colour noise (see paperPcaValues)
}

async function readDataStats(store: ObjectStore, dataset: string): Promise<DataStats> {
  const manifest = await readManifest(store, dataset);
  const stats = await getJson<DatasetStats>(store, datasetKeys(dataset).stats);
  const mean = await readMeanImage(store, dataset);
  return { manifest, mean, pcaVectors: Float32Array.from(stats.pcaEigenvectors), pcaValues: paperPcaValues(stats.pcaEigenvalues) };
}

// Creates the run's initial state (the paper's initialization from the seed) as the
// checkpoint at epoch 0, batch 0, unless the run already has one (a retry, or a resume).
export async function initRun(input: { runId: string; store: string; model: string | NetConfig; classes: number; seed: number; threads?: number }): Promise<{ checkpointKey: string; resumed: boolean; parameters: number }> {
  const store = openStore(input.store);
  const latest = await readLatest(store, input.runId);
  if (latest) return { checkpointKey: latest.key, resumed: true, parameters: 0 };
  const config = typeof input.model === 'string' ? modelConfig(input.model, { classes: input.classes }) : input.model;
  const net = new Network(config, { seed: input.seed, threads: input.threads });
  const pointer = await saveCheckpoint(store, input.runId, net, { epoch: 0, batch: 0 }, { attempt: 0, lr: 0 });
  const parameters = net.params.reduce((a, p) => a + p.shape.reduce((x, y) => x * y, 1), 0);
  return { checkpointKey: pointer.key, resumed: false, parameters };
}

// What an epoch's last attempt left for the next one (runs/<run>/attempts/<epoch>.json).
interface AttemptRecord {
  epoch: number;
  attempt: number;
  startedFrom: string | null;  // latest.json's checkpoint when the attempt started
  failuresInARow: number;      // attempts before it that failed from that same checkpoint
  lastError?: string;          // how it failed, when it could say (a killed worker cannot)
  paused?: boolean;            // it ended on an operator's `temporal activity pause`
}

// Progress or a loop? Temporal retries a failed attempt every second without limit (a
// preempted worker, a lost machine); an attempt that finds latest.json where the previous
// one started has made no progress, and maxFailuresPerCheckpoint of those in a row fail
// the run (NoProgress) naming the checkpoint and the last error. The record lives in the
// store, not in heartbeat details, so a thrown error reaches the next attempt for sure.
async function startAttempt(store: ObjectStore, input: TrainEpochInput, attempt: number): Promise<(error: unknown) => Promise<void>> {
  const key = runKeys(input.runId).attempts(input.epoch);
  const from = (await readLatest(store, input.runId))?.key ?? null;
  // A first attempt (also after a pause: the workflow schedules a new activity) starts afresh.
  const previous = attempt > 1 && await store.head(key) ? await getJson<AttemptRecord>(store, key) : undefined;
  // An operator's pause is not a failure; the workflow shows 'paused' until this attempt.
  if (previous?.paused) await signalOwnWorkflow(TRAINING_STATE_SIGNAL, { phase: 'training', checkpoint: from });
  const failuresInARow = previous && !previous.paused && previous.startedFrom === from ? previous.failuresInARow + 1 : 0;
  const limit = input.maxFailuresPerCheckpoint ?? DEFAULT_MAX_FAILURES_PER_CHECKPOINT;
  if (failuresInARow >= limit) {
    throw ApplicationFailure.nonRetryable(
      `epoch ${input.epoch} failed ${failuresInARow} times in a row from checkpoint ${from ?? '(none)'} without progress; ` +
      `last error: ${previous?.lastError ?? 'none reported (the attempt was lost: its worker stopped, or stopped heartbeating)'}`, 'NoProgress');
  }
  const record: AttemptRecord = { epoch: input.epoch, attempt, startedFrom: from, failuresInARow };
  await store.put(key, JSON.stringify(record));
  return async (error: unknown) => {
    if (error instanceof CancelledFailure && pausedByOperator()) {
      record.paused = true;
      await store.put(key, JSON.stringify(record));
      await signalOwnWorkflow(TRAINING_STATE_SIGNAL, { phase: 'paused', checkpoint: (await readLatest(store, input.runId))?.key });
      return;
    }
    if (error instanceof CancelledFailure) return;  // the workflow paused or stopped it at a checkpoint
    record.lastError = (error instanceof Error ? error.message : String(error)).slice(0, 1000);
    await store.put(key, JSON.stringify(record)).catch(() => undefined);  // best effort: the error is what matters
  };
}

export async function trainEpoch(input: TrainEpochInput): Promise<EpochResult> {
  const store = openStore(input.store);
  const attempt = activityAttempt();
  const failed = await startAttempt(store, input, attempt);
  try {
    return await runEpoch(store, input, attempt);
  } catch (e) {
    await failed(e);
    throw e;
  }
}

async function runEpoch(store: ObjectStore, input: TrainEpochInput, attempt: number): Promise<EpochResult> {
  const t0 = process.hrtime.bigint();
  const data = await readDataStats(store, input.dataset);
  const split = data.manifest.splits[input.trainSplit];
  if (!split) throw ApplicationFailure.nonRetryable(`dataset '${input.dataset}' has no split '${input.trainSplit}'`, 'InvalidInput');
  const plan = epochPlan(split.shardImages, { seed: input.seed, epoch: input.epoch, batchSize: input.batchSize });
  if (plan.batches === 0) throw ApplicationFailure.nonRetryable(`split '${input.trainSplit}' has ${split.images} images, fewer than one batch of ${input.batchSize}`, 'InvalidInput');

  const loaded = await loadNewestCheckpoint(store, input.runId, { threads: input.threads, precision: input.precision });
  if (!loaded) throw ApplicationFailure.nonRetryable(`run ${input.runId} has no checkpoint: initRun must run first`, 'RunMissing');
  const { net, pointer, warnings } = loaded;
  let startBatch: number;
  if (pointer.epoch === input.epoch) startBatch = pointer.batch;
  else if (pointer.epoch === input.epoch - 1) startBatch = 0;  // the previous epoch's end
  else throw ApplicationFailure.nonRetryable(`run ${input.runId}: the newest checkpoint is at epoch ${pointer.epoch} batch ${pointer.batch}, not usable for epoch ${input.epoch}`, 'CheckpointMismatch');
  if (pointer.epoch === input.epoch && startBatch >= plan.batches) {
    // This epoch finished in an earlier attempt; report it again.
    return { epoch: input.epoch, batches: plan.batches, batchesThisAttempt: 0, resumedAt: startBatch, meanLoss: NaN, recentLoss: NaN, checkpointKey: pointer.key, imagesPerSecond: 0, nativeSeconds: 0, seconds: 0, stalled: false, warnings };
  }

  const keys = datasetKeys(input.dataset);
  const batchKeys = Array.from({ length: split.shards }, (_, i) => keys.batch(input.trainSplit, i));
  const crop = input.crop;
  const stallLoss = Math.log(net.config.classes);
  let lossSum = 0;
  let trained = 0;
  const recent: number[] = [];  // the last losses, for the stall check
  let nativeNs = 0n;
  let lastKey = pointer.key;
  let batch = startBatch;
  const signal = cancellationSignal();
  // One input buffer for the whole epoch (the step copies it): no page faults per batch.
  const input32 = new Float32Array(input.batchSize * net.inputSize);
  const deleted: string[] = [];
  const checkpoint = async () => {
    lastKey = (await saveCheckpoint(store, input.runId, net, { epoch: input.epoch, batch }, { attempt, lr: input.lr })).key;
    heartbeat({ epoch: input.epoch, batch, checkpoint: lastKey });
    // Retention, now that latest.json has moved: housekeeping, so a failure is a warning.
    try {
      deleted.push(...await pruneCheckpoints(store, input.runId, input.retention, lastKey));
    } catch (e) {
      warnings.push(`checkpoint retention after ${lastKey}: ${(e as Error).message}`);
    }
  };
  for await (const mb of miniBatches(store, batchKeys, plan, { seed: input.seed, epoch: input.epoch, startBatch })) {
    if (signal?.aborted) {
      await checkpoint();  // stop at a batch boundary with nothing lost
      throw new CancelledFailure(`epoch ${input.epoch} cancelled at batch ${batch}; checkpoint ${lastKey}`);
    }
    if (workerStopping()) {
      await checkpoint();
      throw ApplicationFailure.retryable(`worker stopping: epoch ${input.epoch} checkpointed at batch ${batch} (${lastKey}); another attempt resumes there`, 'WorkerStopping');
    }
    const s0 = process.hrtime.bigint();
    const images = await augmentTrain(mb.pixels, input.batchSize, mb.size, crop, {
      mean: data.mean, pcaVectors: data.pcaVectors, pcaValues: data.pcaValues, pcaSigma: input.pcaSigma,
      seed: BigInt(input.seed), counter: BigInt(input.epoch), firstIndex: mb.index * input.batchSize, out: input32,
    });
    let loss: number;
    try {
      loss = (await net.step(images, mb.labels, { lr: input.lr })).loss;
    } catch (e) {
      if (e instanceof NonFiniteLossError) {
        throw ApplicationFailure.nonRetryable(`epoch ${input.epoch} batch ${batch}: ${e.message}; the last good checkpoint is ${lastKey}`, 'NonFiniteLoss');
      }
      throw e;
    }
    nativeNs += process.hrtime.bigint() - s0;
    lossSum += loss;
    recent.push(loss);
    if (recent.length > 10) recent.shift();
    trained++;
    batch = mb.index + 1;
    if (batch % input.checkpointEvery === 0 && batch < plan.batches) await checkpoint();
    else heartbeat({ epoch: input.epoch, batch, checkpoint: lastKey });
  }
  await checkpoint();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const recentLoss = recent.length ? recent.reduce((a, b) => a + b, 0) / recent.length : NaN;
  return {
    epoch: input.epoch,
    batches: batch,
    batchesThisAttempt: trained,
    resumedAt: startBatch,
    meanLoss: lossSum / Math.max(1, trained),
    checkpointKey: lastKey,
    imagesPerSecond: (trained * input.batchSize) / seconds,
    nativeSeconds: Number(nativeNs) / 1e9,
    seconds,
    recentLoss,
    // A stall: still within 10% of chance (ln classes) over the last 10 batches after stallBatches.
    stalled: input.epoch * plan.batches + batch >= input.stallBatches && Math.abs(recentLoss - stallLoss) < 0.1 * stallLoss,
    warnings,
    checkpointsDeleted: deleted,
  };
}

// Top-1/top-5 error and mean loss of a checkpoint on a split (every image once, centre crop).
export async function validate(input: { store: string; dataset: string; split: string; checkpointKey: string; epoch: number; batchSize: number; threads?: number }): Promise<ValidationResult> {
  const t0 = Date.now();
  const store = openStore(input.store);
  const split = (await readManifest(store, input.dataset)).splits[input.split];
  if (!split) throw ApplicationFailure.nonRetryable(`dataset '${input.dataset}' has no split '${input.split}'`, 'InvalidInput');
  const [net, mean] = await Promise.all([loadEvaluationNetwork(store, input.checkpointKey, input.threads), readMeanImage(store, input.dataset)]);
  const classes = net.config.classes;
  let images = 0, lossSum = 0, top1 = 0, top5 = 0;
  const keys = datasetKeys(input.dataset);
  const batchKeys = Array.from({ length: split.shards }, (_, i) => keys.batch(input.split, i));
  for await (const b of readBatches(store, batchKeys)) {
    await scoreBatch(net, b, b.key, mean, 1, input.batchSize, (probs, labels) => {
      labels.forEach((label, i) => {
        const higher = classesAbove(probs, i * classes, classes, label);
        lossSum += -Math.log(Math.max(probs[i * classes + label], 1e-30));
        if (higher >= 1) top1++;
        if (higher >= 5) top5++;
      });
      images += labels.length;
      heartbeat({ split: input.split, images });
    });
  }
  return { epoch: input.epoch, split: input.split, images, loss: lossSum / images, top1Error: top1 / images, top5Error: top5 / images, seconds: (Date.now() - t0) / 1000 };
}

// metrics.jsonl is rewritten whole (object stores have no append); one line per record,
// idempotent by (kind, epoch): a retried append does not duplicate a line.
export async function appendMetrics(input: { store: string; runId: string; record: Record<string, unknown> & { kind: string; epoch: number } }): Promise<void> {
  const store = openStore(input.store);
  const key = runKeys(input.runId).metrics;
  const lines = (await store.head(key)) ? (await store.get(key)).toString('utf8').split('\n').filter((l) => l.trim()) : [];
  const same = (l: string) => {
    const r = JSON.parse(l) as { kind: string; epoch: number };
    return r.kind === input.record.kind && r.epoch === input.record.epoch;
  };
  const kept = lines.filter((l) => !same(l));
  kept.push(JSON.stringify(input.record));
  await store.put(key, kept.join('\n') + '\n');
}

// Whether datasets/<name>/ is prepared in the store, and what the workflow needs of it.
export async function datasetStatus(input: { store: string; name: string }): Promise<{ prepared: boolean; classes: number; imageSize: number; splits: string[] }> {
  const store = openStore(input.store);
  const key = datasetKeys(input.name).manifest;
  if (!(await store.head(key))) return { prepared: false, classes: 0, imageSize: 0, splits: [] };
  const m = await getJson<DatasetManifest>(store, key);
  return { prepared: true, classes: m.classes, imageSize: m.imageSize, splits: Object.keys(m.splits) };
}

// A built-in model's input size and class count (workflow code cannot load the addon).
export async function describeModel(input: { model: string; classes: number }): Promise<{ classes: number; inputSize: number }> {
  const cfg = modelConfig(input.model, { classes: input.classes });
  return { classes: cfg.classes, inputSize: cfg.input.height };
}

export async function latestCheckpoint(input: { store: string; runId: string }): Promise<{ key: string; epoch: number; batch: number } | undefined> {
  const latest = await readLatest(openStore(input.store), input.runId);
  return latest && { key: latest.key, epoch: latest.epoch, batch: latest.batch };
}
