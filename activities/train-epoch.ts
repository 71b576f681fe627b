// trainEpoch: one epoch from the newest valid checkpoint (resuming mid-epoch at the exact
// batch), checkpointing every checkpointEvery batches and at the end, pruning what the
// retention policy lets go. Everything a retry needs is in the store (latest.json and the
// checkpoints); heartbeats only report progress.
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';

import { DEFAULT_MAX_FAILURES_PER_CHECKPOINT, TRAINING_STATE_SIGNAL } from '../common/contract';
import type { DatasetManifest, EpochResult, TrainEpochInput } from '../common/contract';
import { datasetKeys, runKeys } from '../common/store-layout';
import { augmentTrain, paperPcaValues } from '../native/augment';
import { NonFiniteLossError } from '../native/index';
import type { DatasetStats } from '../native/image-stats';
import { activityAttempt, cancellationSignal, heartbeat, pausedByOperator, signalOwnWorkflow, workerStopping } from './activity-context';
import { loadNewestCheckpoint, readLatest, saveCheckpoint } from './checkpoint';
import { readManifest, readMeanImage } from './dataset-files';
import { epochPlan, miniBatches } from './epoch-data';
import { pruneCheckpoints } from './retention';
import { EpochEvents, firstConvKernels } from './tensorboard';
import { getJson, openStore, ObjectStore } from './store';

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
//
// The attempt number that orders checkpoints (saveCheckpoint's zombie check) rises within
// an epoch whatever Temporal's own count does: a pause or resume schedules a new activity
// and `temporal activity unpause --reset-attempts` resets the count, and both start again
// at 1 after attempts that already moved latest.json. Temporal's count alone would then
// have every save of the live attempt refused as a zombie's.
async function startAttempt(store: ObjectStore, input: TrainEpochInput, temporalAttempt: number): Promise<{ attempt: number; failed: (error: unknown) => Promise<void> }> {
  const key = runKeys(input.runId).attempts(input.epoch);
  const from = (await readLatest(store, input.runId))?.key ?? null;
  const previous = await store.head(key) ? await getJson<AttemptRecord>(store, key) : undefined;
  const attempt = Math.max(temporalAttempt, (previous?.attempt ?? 0) + 1);
  // An operator's pause is not a failure; the workflow shows 'paused' until this attempt.
  if (previous?.paused) await signalOwnWorkflow(TRAINING_STATE_SIGNAL, { phase: 'training', checkpoint: from });
  // Failures count within one activity: the first attempt of a newly scheduled one (after a
  // pause, a resume) starts the count afresh.
  const failuresInARow = temporalAttempt > 1 && previous && !previous.paused && previous.startedFrom === from ? previous.failuresInARow + 1 : 0;
  const limit = input.maxFailuresPerCheckpoint ?? DEFAULT_MAX_FAILURES_PER_CHECKPOINT;
  if (failuresInARow >= limit) {
    throw ApplicationFailure.nonRetryable(
      `epoch ${input.epoch} failed ${failuresInARow} times in a row from checkpoint ${from ?? '(none)'} without progress; ` +
      `last error: ${previous?.lastError ?? 'none reported (the attempt was lost: its worker stopped, or stopped heartbeating)'}`, 'NoProgress');
  }
  const record: AttemptRecord = { epoch: input.epoch, attempt, startedFrom: from, failuresInARow };
  await store.put(key, JSON.stringify(record));
  const failed = async (error: unknown) => {
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
  return { attempt, failed };
}

export async function trainEpoch(input: TrainEpochInput): Promise<EpochResult> {
  const store = openStore(input.store);
  const { attempt, failed } = await startAttempt(store, input, activityAttempt());
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
  // TensorBoard's points: buffered per batch, written as one file per checkpoint, by the
  // epoch's newest attempt only (its attempt record says which that is).
  const attemptKey = runKeys(input.runId).attempts(input.epoch);
  const events = new EpochEvents(store, input.runId, input.epoch, plan.batches, startBatch,
    async () => (await getJson<AttemptRecord>(store, attemptKey)).attempt <= attempt, warnings);
  let stepStart = process.hrtime.bigint();  // images/s per batch: data wait included, checkpoints not
  const checkpoint = async () => {
    await events.flush(batch);  // before the checkpoint: a range never goes missing behind one
    const c0 = process.hrtime.bigint();
    lastKey = (await saveCheckpoint(store, input.runId, net, { epoch: input.epoch, batch }, { attempt, lr: input.lr })).key;
    heartbeat({ epoch: input.epoch, batch, checkpoint: lastKey });
    await events.checkpointed(batch, Number(process.hrtime.bigint() - c0) / 1e9);
    // Retention, now that latest.json has moved: housekeeping, so a failure is a warning.
    try {
      deleted.push(...await pruneCheckpoints(store, input.runId, input.retention, lastKey));
    } catch (e) {
      warnings.push(`checkpoint retention after ${lastKey}: ${(e as Error).message}`);
    }
    stepStart = process.hrtime.bigint();
  };
  for await (const mb of miniBatches(store, batchKeys, plan, { seed: input.seed, epoch: input.epoch, startBatch, expect: { imageSize: data.manifest.imageSize, classes: data.manifest.classes } })) {
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
      loss = (await net.step(images, mb.labels, { lr: input.lr, ...(input.lrMultipliers ? { lrMultipliers: input.lrMultipliers } : {}) })).loss;
    } catch (e) {
      if (e instanceof NonFiniteLossError) {
        throw ApplicationFailure.nonRetryable(`epoch ${input.epoch} batch ${batch}: ${e.message}; the last good checkpoint is ${lastKey}`, 'NonFiniteLoss');
      }
      throw e;
    }
    const stepEnd = process.hrtime.bigint();
    nativeNs += stepEnd - s0;
    events.trained(mb.index, { loss, lr: input.lr, imagesPerSecond: input.batchSize / (Number(stepEnd - stepStart) / 1e9) });
    stepStart = stepEnd;
    lossSum += loss;
    recent.push(loss);
    if (recent.length > 10) recent.shift();
    trained++;
    batch = mb.index + 1;
    if (batch % input.checkpointEvery === 0 && batch < plan.batches) await checkpoint();
    else heartbeat({ epoch: input.epoch, batch, checkpoint: lastKey });
  }
  try {
    const kernels = await firstConvKernels(net);  // the epoch's end, at its last step
    if (kernels) events.image(batch - 1, kernels);
  } catch (e) {
    warnings.push(`TensorBoard image of conv1's kernels at epoch ${input.epoch}'s end: ${(e as Error).message}`);
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
