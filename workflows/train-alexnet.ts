// TrainAlexNet: prepare the data if needed, create the run, then per epoch train (an
// activity on the training queue that checkpoints and resumes at the exact batch),
// validate, decide the learning rate (pure policy code) and append metrics; continue as
// new when the history grows. Signals: pause, resume, setLearningRate, stop. Query:
// progress. Deterministic workflow code only.
//
// Preemption: a training attempt that dies (lost worker, preempted machine, a retryable
// error) is retried by Temporal every second, without limit, so `temporal activity pause`
// and `unpause` keep working; the activity itself tells progress from a loop (it fails the
// run after maxFailuresPerCheckpoint attempts in a row from the same checkpoint: see
// trainEpoch).
import {
  ActivityFailure, ApplicationFailure, CancellationScope, condition, defineQuery, defineSignal, defineUpdate,
  executeChild, isCancellation, makeContinueAsNewFunc, patched, proxyActivities, setHandler, workflowInfo,
} from '@temporalio/workflow';

import type * as activities from '../activities';
import { cpuActivities } from './activity-proxies';
import { surfaceCause, validInput } from './failures';
import { decideLr, initialLrState, LrPolicy, LrState, overrideLr, validateLrPolicy } from '../common/lr-policy';
import {
  DEFAULT_MAX_FAILURES_PER_CHECKPOINT, DEFAULT_RETENTION, GEMM_PRECISIONS, GPU_TASK_QUEUE, NON_RETRYABLE_ERROR_TYPES, RETENTION_POLICY_FIELDS, RetentionPolicy,
  InitFrom, TRAIN_ALEXNET_INPUT_FIELDS, TRAINING_STATE_SIGNAL, TrainAlexNetInput, TrainingState, TrainProgress,
} from '../common/contract';
import type { ControlResult, EpochResult, SetLearningRateResult, TrainResult, ValidationResult } from '../common/contract';
import { ArgumentError, inputObject, integerIn, nonEmptyString, numberIn, oneOf, refuseUnknownFields } from '../common/validate';
import { PrepareDataset } from './prepare-dataset';

const cpu = cpuActivities({ startToCloseTimeout: '1 hour', heartbeatTimeout: '2 minutes' });

function trainingActivities(device: 'cpu' | 'cuda', heartbeatTimeoutSeconds: number) {
  return proxyActivities<typeof activities>({
    // CPU training runs on the workflow's own queue (alexnet); CUDA on the GPU workers'.
    ...(device === 'cuda' ? { taskQueue: GPU_TASK_QUEUE } : {}),
    startToCloseTimeout: '24 hours',
    heartbeatTimeout: heartbeatTimeoutSeconds * 1000,
    cancellationType: 'WAIT_CANCELLATION_COMPLETED',  // the activity checkpoints before it stops
    // Every second, without limit: an attempt that makes no progress ends the run itself
    // (NoProgress). A superseded attempt is retried too: the next one, with a higher
    // attempt number, starts from the newest checkpoint and a zombie ahead of it stops.
    retry: { initialInterval: '1 second', backoffCoefficient: 1, nonRetryableErrorTypes: NON_RETRYABLE_ERROR_TYPES },
  });
}

export const pauseSignal = defineSignal('pause');
export const resumeSignal = defineSignal('resume');
export const stopSignal = defineSignal('stop');
export const setLearningRateSignal = defineSignal<[number]>('setLearningRate');
export const progressQuery = defineQuery<TrainProgress>('progress');
export const trainingStateSignal = defineSignal<[TrainingState]>(TRAINING_STATE_SIGNAL);

// Updates: the same commands as the signals above, under the same names (Temporal keeps
// signal and update handlers apart), but the caller gets an answer: a rejected value is
// refused by the validator with the reason (nothing enters the history), an accepted one
// returns the run's state after it. See README (TrainAlexNet: signals and updates).
export const setLearningRateUpdate = defineUpdate<SetLearningRateResult, [number]>('setLearningRate');
export const pauseUpdate = defineUpdate<ControlResult>('pause');
export const resumeUpdate = defineUpdate<ControlResult>('resume');
export const stopUpdate = defineUpdate<ControlResult>('stop');

type OptionalTrainFields = 'dataset' | 'classes' | 'crop' | 'precision' | 'initFrom' | 'reinit' | 'lrMultipliers';
export type ValidTrainInput = Required<Omit<TrainAlexNetInput, OptionalTrainFields | 'lrPolicy' | 'runId' | 'retention'>> &
  Pick<TrainAlexNetInput, OptionalTrainFields> & { lrPolicy: LrPolicy; runId: string; retention?: RetentionPolicy };

// initFrom: exactly one of {run}, {checkpoint}, {weights}, a non-empty string.
function validateInitFrom(raw: unknown): InitFrom {
  const kinds = ['run', 'checkpoint', 'weights'] as const;
  const usage = 'Expected {"run": "<runId>"}, {"checkpoint": "<key>"} or {"weights": "<safetensors URI>"} for initFrom';
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ArgumentError('initFrom', `${usage} but received ${JSON.stringify(raw)}`);
  refuseUnknownFields('initFrom', raw, kinds);
  const given = kinds.filter((k) => k in raw);
  if (given.length !== 1) throw new ArgumentError('initFrom', `${usage} (one of them) but received ${JSON.stringify(raw)}`);
  const kind = given[0];
  return { [kind]: nonEmptyString(`initFrom.${kind}`, (raw as Record<string, unknown>)[kind]) } as InitFrom;
}

// Layer names (reinit): a list of distinct non-empty strings; the activity checks them
// against the network.
function layerNames(name: string, raw: unknown): string[] {
  if (!Array.isArray(raw)) throw new ArgumentError(name, `Expected a list of layer names such as ["fc8"] for ${name} but received ${JSON.stringify(raw)}`);
  const names = raw.map((v, i) => nonEmptyString(`${name}[${i}]`, v));
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice !== undefined) throw new ArgumentError(name, `${name} names '${twice}' twice`);
  return names;
}

// lrMultipliers: {layer: factor}, each factor a number in 0..1000 (0 freezes the layer).
function validateLrMultipliers(raw: unknown): Record<string, number> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ArgumentError('lrMultipliers', `Expected an object {"<layer>": factor} such as {"fc8": 10, "conv1": 0} for lrMultipliers but received ${JSON.stringify(raw)}`);
  const out: Record<string, number> = {};
  for (const [layer, factor] of Object.entries(raw)) out[layer] = numberIn(`lrMultipliers.${layer}`, factor, 0, 1000);
  return out;
}

function validateRetention(raw: unknown): RetentionPolicy {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ArgumentError('retention', 'Expected an object {keepLast, keepEpochEvery, keepAll} for retention');
  const r = raw as RetentionPolicy;
  refuseUnknownFields('retention', r, RETENTION_POLICY_FIELDS);
  if (r.keepAll !== undefined && typeof r.keepAll !== 'boolean') throw new ArgumentError('retention.keepAll', `Expected boolean for retention.keepAll but received ${JSON.stringify(r.keepAll)}`);
  return {
    keepLast: integerIn('retention.keepLast', r.keepLast ?? DEFAULT_RETENTION.keepLast, 1, 1_000_000),
    keepEpochEvery: integerIn('retention.keepEpochEvery', r.keepEpochEvery ?? DEFAULT_RETENTION.keepEpochEvery, 0, 1_000_000),
    keepAll: r.keepAll ?? DEFAULT_RETENTION.keepAll,
  };
}

export function validateTrainInput(raw: TrainAlexNetInput, runId: string): ValidTrainInput {
  inputObject(raw, TRAIN_ALEXNET_INPUT_FIELDS, 'the TrainAlexNet input');
  const device = oneOf('device', raw.device ?? 'cpu', ['cpu', 'cuda'] as const);
  const precision = raw.precision === undefined ? undefined : oneOf('precision', raw.precision, GEMM_PRECISIONS);
  if (precision === 'tf32' && device !== 'cuda') {
    throw new ArgumentError('precision', "precision 'tf32' needs device 'cuda' (TF32 is a GPU tensor-core format; the CPU takes 'fp32' or 'bf16')");
  }
  return {
    store: nonEmptyString('store', raw.store),
    datasetName: nonEmptyString('datasetName', raw.datasetName),
    dataset: raw.dataset === undefined ? undefined : nonEmptyString('dataset', raw.dataset),
    model: oneOf('model', raw.model ?? 'alexnet', ['alexnet', 'alexnet-64', 'alexnet-32', 'tiny']),
    classes: raw.classes === undefined ? undefined : integerIn('classes', raw.classes, 2, 100_000),
    epochs: integerIn('epochs', raw.epochs ?? 90, 1, 10_000),
    batchSize: integerIn('batchSize', raw.batchSize ?? 128, 1, 4096),
    lrPolicy: validateLrPolicy(raw.lrPolicy ?? { type: 'plateau' }),
    seed: integerIn('seed', raw.seed ?? 0, 0, 2 ** 31 - 1),
    imageSize: integerIn('imageSize', raw.imageSize ?? 256, 8, 1024),
    crop: raw.crop === undefined ? undefined : integerIn('crop', raw.crop, 8, 1024),
    pcaSigma: numberIn('pcaSigma', raw.pcaSigma ?? 0.1, 0, 10),
    checkpointEvery: integerIn('checkpointEvery', raw.checkpointEvery ?? 100, 1, 1_000_000),
    stallBatches: integerIn('stallBatches', raw.stallBatches ?? 1000, 1, 100_000_000),
    device,
    precision,
    validationSplit: raw.validationSplit === undefined ? '' : validationSplitName(nonEmptyString('validationSplit', raw.validationSplit)),
    runId: raw.runId === undefined ? runId : nonEmptyString('runId', raw.runId),
    heartbeatTimeoutSeconds: integerIn('heartbeatTimeoutSeconds', raw.heartbeatTimeoutSeconds ?? 120, 1, 86_400),
    maxFailuresPerCheckpoint: integerIn('maxFailuresPerCheckpoint', raw.maxFailuresPerCheckpoint ?? DEFAULT_MAX_FAILURES_PER_CHECKPOINT, 1, 1000),
    retention: raw.retention === undefined ? undefined : validateRetention(raw.retention),
    initFrom: raw.initFrom === undefined ? undefined : validateInitFrom(raw.initFrom),
    reinit: raw.reinit === undefined ? undefined : layerNames('reinit', raw.reinit),
    lrMultipliers: raw.lrMultipliers === undefined ? undefined : validateLrMultipliers(raw.lrMultipliers),
  };
}

function validationSplitName(split: string): string {
  if (split === 'test') {
    throw new ArgumentError('validationSplit', "validationSplit 'test': the test split is held out for EvaluateAlexNet and reports and never steers training; use 'val' (carved out of train by PrepareDataset when a dataset ships none)");
  }
  return split;
}

// What continueAsNew carries: the input and where the run stands.
export interface TrainCarry {
  epoch: number;
  lrState: LrState;
  latestCheckpoint?: string;
  lastValidation?: ValidationResult;
  lastEpoch?: EpochResult;
  prepared: { classes: number; crop: number; trainSplit: string; validationSplit: string; imageSize: number };
  paused?: boolean;  // paused when the previous run continued as new
}

export async function TrainAlexNet(raw: TrainAlexNetInput, carry?: TrainCarry): Promise<TrainResult> {
  const input = validInput(() => validateTrainInput(raw, workflowInfo().workflowId));
  return train(raw, input, carry).catch(surfaceCause);
}

async function train(raw: TrainAlexNetInput, input: ValidTrainInput, carry?: TrainCarry): Promise<TrainResult> {
  const gpu = trainingActivities(input.device, input.heartbeatTimeoutSeconds);
  const progress: TrainProgress = {
    runId: input.runId, phase: 'preparing', epoch: carry?.epoch ?? 0, epochs: input.epochs,
    lr: carry?.lrState.lr ?? initialLrState(input.lrPolicy).lr, stalled: false, lrHistory: [],
    lastEpoch: carry?.lastEpoch, lastValidation: carry?.lastValidation, latestCheckpoint: carry?.latestCheckpoint,
  };
  let lrState = carry?.lrState ?? initialLrState(input.lrPolicy);
  let paused = carry?.paused ?? false;  // a pause that came just before a continueAsNew holds
  let stopRequested = false;
  let scope: CancellationScope | undefined;
  setHandler(progressQuery, () => ({ ...progress, lr: lrState.lr, lrHistory: lrState.history }));
  const pause = () => {
    paused = true;
    scope?.cancel();  // the epoch stops at a batch boundary with a checkpoint
  };
  const stop = () => {
    stopRequested = true;
    scope?.cancel();
    if (progress.phase !== 'done') progress.phase = 'stopping';  // until the last checkpoint is validated
  };
  setHandler(pauseSignal, pause);
  setHandler(resumeSignal, () => void (paused = false));
  setHandler(stopSignal, stop);
  // pause: answers once the phase has settled: 'paused' (the epoch checkpointed, or the
  // validation running when the pause came ended), 'stopping' or 'done'; or the phase of the
  // moment when a resume overtakes it, or when the run is about to continue as new after
  // this validation. While preparing (a dataset may take hours) it answers 'preparing' at
  // once: the run pauses before its first epoch.
  setHandler(pauseUpdate, async () => {
    pause();
    if (progress.phase !== 'preparing') {
      await condition(() => progress.phase === 'paused' || progress.phase === 'stopping' || progress.phase === 'done' || !paused ||
        (progress.phase === 'validating' && workflowInfo().continueAsNewSuggested));
    }
    return { phase: progress.phase };
  });
  // resume: returns once the paused loop has started training again ('training'), at once
  // when the run was not paused by pause (an activity paused with `temporal activity
  // pause` stays paused until `temporal activity unpause`).
  setHandler(resumeUpdate, async () => {
    const waiting = paused && progress.phase === 'paused' && !scope;
    paused = false;
    if (waiting) await condition(() => progress.phase !== 'paused' || paused);
    return { phase: progress.phase };
  });
  // stop: returns at once, phase 'stopping' (the epoch checkpoints, the checkpoint is
  // validated, the run ends with stoppedBy 'signal'): the caller waits for the result.
  setHandler(stopUpdate, () => {
    stop();
    return { phase: progress.phase };
  });
  // From trainEpoch: an operator paused or unpaused the running activity.
  setHandler(trainingStateSignal, (state: TrainingState) => {
    if (progress.phase !== 'training' && progress.phase !== 'paused') return;
    progress.phase = state.phase === 'paused' ? 'paused' : 'training';
    if (state.checkpoint) progress.latestCheckpoint = state.checkpoint;
  });
  setHandler(setLearningRateSignal, (lr: number) => {
    try {
      lrState = overrideLr(lrState, lr, 'setLearningRate signal');
    } catch {
      // a signal cannot answer: an invalid LR is ignored (the update refuses it with the reason)
    }
  });
  // The validator applies overrideLr's rule (a number > 0 and <= 10) without changing
  // anything; its error, naming the value, goes back to the caller.
  setHandler(setLearningRateUpdate, (lr: number) => {
    lrState = overrideLr(lrState, lr, 'setLearningRate update');
    return { lr: lrState.lr, policy: { type: input.lrPolicy.type, ...lrState } };
  }, {
    validator: (lr: number) => {
      try {
        overrideLr(lrState, lr, 'setLearningRate update');
      } catch (e) {
        throw ApplicationFailure.nonRetryable((e as Error).message, 'InvalidArgument');
      }
    },
    description: 'Set the learning rate from the next epoch on (0 < lr <= 10); returns the LR and the policy state',
  });

  let prepared = carry?.prepared;
  if (!prepared) {
    let status = await cpu.datasetStatus({ store: input.store, name: input.datasetName });
    if (!status.prepared) {
      if (!input.dataset) throw ApplicationFailure.nonRetryable(`dataset '${input.datasetName}' is not prepared in ${input.store} and no dataset URI was given to prepare it from`, 'DatasetMissing');
      await executeChild(PrepareDataset, {
        workflowId: `${workflowInfo().workflowId}-prepare`,
        args: [{ dataset: input.dataset, store: input.store, name: input.datasetName, imageSize: input.imageSize, seed: input.seed }],
      });
      status = await cpu.datasetStatus({ store: input.store, name: input.datasetName });
    }
    const model = await cpu.describeModel({ model: input.model, classes: input.classes ?? status.classes });
    const crop = input.crop ?? model.inputSize;
    if (crop > status.imageSize || crop !== model.inputSize) {
      throw ApplicationFailure.nonRetryable(`crop ${crop}: the model ${input.model} takes ${model.inputSize}x${model.inputSize} inputs and the dataset's images are ${status.imageSize}x${status.imageSize}`, 'InvalidInput');
    }
    // Runs started before validation splits were carved keep their old rule on replay.
    const carvedRule = patched('validation-split-from-train');
    const validationSplit = input.validationSplit || (carvedRule || status.splits.includes('val') ? 'val' : status.splits.includes('test') ? 'test' : '');
    if (carvedRule && !status.splits.includes(validationSplit)) {
      throw ApplicationFailure.nonRetryable(
        `dataset '${input.datasetName}' in ${input.store} has no '${validationSplit}' split (it has ${status.splits.join(', ')}): ` +
        `it was prepared before PrepareDataset carved a validation split out of train. Prepare it again (alexnet prepare --dataset <images> --store ${input.store} --name ${input.datasetName}, ` +
        `optionally --validation-fraction) and restart; training never validates on the test split`, 'DatasetNeedsValidationSplit');
    }
    prepared = { classes: model.classes, crop, trainSplit: 'train', validationSplit, imageSize: status.imageSize };
    const init = await cpu.initRun({
      runId: input.runId, store: input.store, model: input.model, classes: model.classes, seed: input.seed, datasetName: input.datasetName,
      ...(input.initFrom ? { initFrom: input.initFrom } : {}), ...(input.reinit ? { reinit: input.reinit } : {}),
      ...(input.lrMultipliers ? { lrMultipliers: input.lrMultipliers } : {}),
    });
    progress.latestCheckpoint = init.checkpointKey;
  }

  let stoppedBy: TrainResult['stoppedBy'] = 'epochs';
  for (let epoch = progress.epoch; epoch < input.epochs; epoch++) {
    progress.epoch = epoch;
    let result: EpochResult | undefined;
    while (!result) {
      if (paused) {
        progress.phase = 'paused';
        await condition(() => !paused || stopRequested);
      }
      if (stopRequested) break;
      progress.phase = 'training';
      const epochScope = scope = new CancellationScope();
      try {
        result = await epochScope.run(() => gpu.trainEpoch({
          runId: input.runId, store: input.store, dataset: input.datasetName, trainSplit: prepared!.trainSplit,
          epoch, lr: lrState.lr, batchSize: input.batchSize, seed: input.seed, crop: prepared!.crop,
          pcaSigma: input.pcaSigma, checkpointEvery: input.checkpointEvery, stallBatches: input.stallBatches,
          ...(input.precision ? { precision: input.precision } : {}),
          ...(input.maxFailuresPerCheckpoint !== DEFAULT_MAX_FAILURES_PER_CHECKPOINT ? { maxFailuresPerCheckpoint: input.maxFailuresPerCheckpoint } : {}),
          ...(input.retention ? { retention: input.retention } : {}),
          ...(input.lrMultipliers ? { lrMultipliers: input.lrMultipliers } : {}),
        }));
      } catch (e) {
        // Paused or stopped: loop (the next attempt resumes at the checkpoint). Also when the
        // attempt the cancel found had died with its worker: the server then retries no more
        // (retry state CANCEL_REQUESTED) and reports its heartbeat timeout, or whatever
        // retryable error ended it, in place of a cancellation; its work up to the last
        // checkpoint is safe all the same.
        const endedByCancel = epochScope.consideredCancelled && e instanceof ActivityFailure && e.retryState === 'CANCEL_REQUESTED' &&
          patched('cancel-over-lost-attempt');
        if (!isCancellation(e) && !endedByCancel) throw e;
      } finally {
        scope = undefined;
      }
    }
    if (!result) {  // stop signal mid-epoch: validate what the last checkpoint holds, then finish
      stoppedBy = 'signal';
      const latest = await cpu.latestCheckpoint({ store: input.store, runId: input.runId });
      if (latest && prepared.validationSplit) {
        progress.phase = 'validating';
        progress.latestCheckpoint = latest.key;
        progress.lastValidation = await cpu.validate({ store: input.store, dataset: input.datasetName, split: prepared.validationSplit, checkpointKey: latest.key, epoch, batchSize: input.batchSize });
        await cpu.appendMetrics({ store: input.store, runId: input.runId, record: { kind: 'stop', epoch, batch: latest.batch, validation: progress.lastValidation } });
      }
      break;
    }
    progress.lastEpoch = result;
    progress.latestCheckpoint = result.checkpointKey;
    progress.stalled ||= result.stalled;
    let validation: ValidationResult | undefined;
    if (prepared.validationSplit) {
      progress.phase = 'validating';
      validation = await cpu.validate({ store: input.store, dataset: input.datasetName, split: prepared.validationSplit, checkpointKey: result.checkpointKey, epoch, batchSize: input.batchSize });
      progress.lastValidation = validation;
    }
    const decision = validation ? decideLr(input.lrPolicy, lrState, validation.top1Error) : undefined;
    await cpu.appendMetrics({
      store: input.store, runId: input.runId,
      record: { kind: 'epoch', epoch, lr: lrState.lr, train: result, validation, stalled: result.stalled, warnings: result.warnings, nextLr: decision?.lr, lrReason: decision?.reason },
    });
    if (decision) lrState = decision.state;
    if (decision?.stop) {
      stoppedBy = 'lr-policy';
      break;
    }
    if (stopRequested) {
      stoppedBy = 'signal';
      break;
    }
    if (workflowInfo().continueAsNewSuggested && epoch + 1 < input.epochs) {
      // Pinned runs move to the current build here (workflows/index.ts): the next run starts
      // on it with this input and carry, so both stay readable by the next build.
      await makeContinueAsNewFunc<typeof TrainAlexNet>({ initialVersioningBehavior: 'AUTO_UPGRADE' })(raw, {
        epoch: epoch + 1, lrState, latestCheckpoint: progress.latestCheckpoint,
        lastValidation: progress.lastValidation, lastEpoch: progress.lastEpoch, prepared, ...(paused ? { paused } : {}),
      });
    }
  }
  progress.phase = 'done';
  return { runId: input.runId, epochs: progress.epoch + (stoppedBy === 'signal' ? 0 : 1), stoppedBy, lastValidation: progress.lastValidation, latestCheckpoint: progress.latestCheckpoint, lrHistory: lrState.history };
}
