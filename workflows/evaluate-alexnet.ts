// EvaluateAlexNet: resolve the checkpoint (a key, or a run's newest from latest.json at
// the time this workflow starts: a Schedule never evaluates a stale checkpoint), fan out
// one evaluation activity per shard of the split (a sliding window of at most
// maxParallel, over as many workers as poll the queue), then merge the partials into the
// report (JSON, Markdown, HTML with plots) in the store. Deterministic workflow code only.
import { defineQuery, setHandler, workflowInfo } from '@temporalio/workflow';

import { cpuActivities, shardActivities } from './activity-proxies';
import { surfaceCause, validInput } from './failures';
import { EVALUATE_ALEXNET_INPUT_FIELDS } from '../common/contract';
import type { EvaluateAlexNetInput, EvaluateAlexNetResult, EvaluateProgress } from '../common/contract';
import { ArgumentError, booleanValue, checkpointRef, inputObject, integerIn, nonEmptyString, oneOf } from '../common/validate';
import { inLanes } from '../common/lanes';
import { runKeys } from '../common/store-layout';

const cpu = cpuActivities({ startToCloseTimeout: '30 minutes' });

export const evaluateProgressQuery = defineQuery<EvaluateProgress>('progress');

export type ValidEvaluateInput = Required<Omit<EvaluateAlexNetInput, 'split' | 'threads'>> & Pick<EvaluateAlexNetInput, 'split' | 'threads'>;

export function validateEvaluateInput(raw: EvaluateAlexNetInput): ValidEvaluateInput {
  inputObject(raw, EVALUATE_ALEXNET_INPUT_FIELDS, 'the EvaluateAlexNet input');
  const checkpoint = checkpointRef('checkpoint', raw.checkpoint, 'its newest checkpoint');
  const crops = raw.crops ?? 10;
  if (crops !== 1 && crops !== 10) throw new ArgumentError('crops', `Expected 1 (centre crop) or 10 (the paper's ten patches) for crops but received ${JSON.stringify(crops)}`);
  return {
    store: nonEmptyString('store', raw.store),
    checkpoint,
    datasetName: nonEmptyString('datasetName', raw.datasetName),
    split: raw.split === undefined ? undefined : nonEmptyString('split', raw.split),
    crops,
    batchSize: integerIn('batchSize', raw.batchSize ?? 128, 1, 4096),
    maxParallel: integerIn('maxParallel', raw.maxParallel ?? 4, 1, 256),
    device: oneOf('device', raw.device ?? 'cpu', ['cpu', 'cuda'] as const),
    threads: raw.threads === undefined ? undefined : integerIn('threads', raw.threads, 1, 1024),
    promote: raw.promote === undefined ? false : booleanValue('promote', raw.promote),
  };
}


export async function EvaluateAlexNet(raw: EvaluateAlexNetInput): Promise<EvaluateAlexNetResult> {
  const input = validInput(() => validateEvaluateInput(raw));
  return evaluate(input).catch(surfaceCause);
}

async function evaluate(input: ValidEvaluateInput): Promise<EvaluateAlexNetResult> {
  const progress: EvaluateProgress = { phase: 'planning', shardsDone: 0, shardsTotal: 0, imagesDone: 0 };
  setHandler(evaluateProgressQuery, () => progress);
  const info = workflowInfo();
  const plan = await cpu.planEvaluation({ store: input.store, checkpoint: input.checkpoint, datasetName: input.datasetName, split: input.split });
  progress.checkpointKey = plan.checkpointKey;
  progress.shardsTotal = plan.shards;
  progress.phase = 'evaluating';
  const prefix = runKeys(plan.runId).report(info.startTime, plan.split, input.crops, info.runId);
  const { evaluateShard } = shardActivities(input.device);
  const started = Date.now();  // workflow time: deterministic on replay
  await inLanes(plan.shards, input.maxParallel, async (shard) => {
    const r = await evaluateShard({
      store: input.store, datasetName: input.datasetName, split: plan.split, shard, checkpointKey: plan.checkpointKey,
      crops: input.crops, batchSize: input.batchSize, reportPrefix: prefix, threads: input.threads,
    });
    progress.shardsDone++;
    progress.imagesDone += r.images;
  });
  progress.phase = 'reporting';
  const result = await cpu.writeEvaluationReport({
    store: input.store, datasetName: input.datasetName, plan, crops: input.crops, reportPrefix: prefix, createdAt: info.startTime.toISOString(),
    wallSeconds: (Date.now() - started) / 1000,
  });
  if (input.promote) {
    progress.phase = 'promoting';
    result.promotion = await cpu.promoteCheckpoint({
      store: input.store, runId: plan.runId, checkpointKey: plan.checkpointKey, split: plan.split, crops: input.crops,
      images: result.images, top1Error: result.top1Error, top5Error: result.top5Error, report: result.reportKeys.json, evaluation: info.workflowId,
    });
  }
  progress.phase = 'done';
  return result;
}
