// EvaluateAlexNet: resolve the checkpoint (a key, or a run's newest from latest.json at
// the time this workflow starts: a Schedule never evaluates a stale checkpoint), fan out
// one evaluation activity per shard of the split (a sliding window of at most
// maxParallel, over as many workers as poll the queue), then merge the partials into the
// report (JSON, Markdown, HTML with plots) in the store. Deterministic workflow code only.
import { ApplicationFailure, defineQuery, proxyActivities, setHandler, workflowInfo } from '@temporalio/workflow';

import type * as activities from '../activities';
import { surfaceCause } from './failures';
import { GPU_TASK_QUEUE } from './shared';
import type { EvaluateAlexNetInput, EvaluateAlexNetResult } from './shared';
import { ArgumentError, integerIn, oneOf } from './validate';

const cpu = proxyActivities<typeof activities>({
  startToCloseTimeout: '30 minutes',
  retry: { maximumAttempts: 5, nonRetryableErrorTypes: ['StateError', 'InvalidStoreUriError', 'InvalidKeyError'] },
});

function evaluationActivities(device: 'cpu' | 'cuda') {
  return proxyActivities<typeof activities>({
    ...(device === 'cuda' ? { taskQueue: GPU_TASK_QUEUE } : {}),
    startToCloseTimeout: '2 hours',
    heartbeatTimeout: '2 minutes',
    retry: { maximumAttempts: 10, initialInterval: '1 second', nonRetryableErrorTypes: ['StateError', 'InvalidStoreUriError', 'InvalidKeyError'] },
  });
}

export interface EvaluateProgress {
  phase: 'planning' | 'evaluating' | 'reporting' | 'done';
  checkpointKey?: string;
  shardsDone: number;
  shardsTotal: number;
  imagesDone: number;
}
export const evaluateProgressQuery = defineQuery<EvaluateProgress>('progress');

export type ValidEvaluateInput = Required<Omit<EvaluateAlexNetInput, 'split' | 'threads'>> & Pick<EvaluateAlexNetInput, 'split' | 'threads'>;

export function validateEvaluateInput(raw: EvaluateAlexNetInput): ValidEvaluateInput {
  if (typeof raw !== 'object' || raw === null) throw new ArgumentError('input', 'Expected an object {store, checkpoint, datasetName, ...} for input');
  const str = (field: string, v: unknown) => {
    if (typeof v !== 'string' || v.trim() === '') throw new ArgumentError(field, `Expected a non-empty string for ${field} but received ${JSON.stringify(v)}`);
    return v;
  };
  const c = raw.checkpoint as unknown;
  let checkpoint: string | { run: string };
  if (typeof c === 'string' && c.trim() !== '') checkpoint = c;
  else if (typeof c === 'object' && c !== null && typeof (c as { run?: unknown }).run === 'string' && (c as { run: string }).run.trim() !== '') checkpoint = { run: (c as { run: string }).run };
  else throw new ArgumentError('checkpoint', `Expected a checkpoint key or {"run": "<runId>"} (its newest checkpoint) for checkpoint but received ${JSON.stringify(c)}`);
  const crops = raw.crops ?? 10;
  if (crops !== 1 && crops !== 10) throw new ArgumentError('crops', `Expected 1 (centre crop) or 10 (the paper's ten patches) for crops but received ${JSON.stringify(crops)}`);
  return {
    store: str('store', raw.store),
    checkpoint,
    datasetName: str('datasetName', raw.datasetName),
    split: raw.split === undefined ? undefined : str('split', raw.split),
    crops,
    batchSize: integerIn('batchSize', raw.batchSize ?? 128, 1, 4096),
    maxParallel: integerIn('maxParallel', raw.maxParallel ?? 4, 1, 256),
    device: oneOf('device', raw.device ?? 'cpu', ['cpu', 'cuda'] as const),
    threads: raw.threads === undefined ? undefined : integerIn('threads', raw.threads, 1, 1024),
  };
}

// Where this evaluation's report goes: runs/<runId>/reports/<start time>-<split>-<crops>crop-<id>.
export function reportPrefix(runId: string, startTime: Date, split: string, crops: number, workflowRunId: string): string {
  const stamp = startTime.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `runs/${runId}/reports/${stamp}-${split}-${crops}crop-${workflowRunId.slice(0, 8)}`;
}

export async function EvaluateAlexNet(raw: EvaluateAlexNetInput): Promise<EvaluateAlexNetResult> {
  let input: ValidEvaluateInput;
  try {
    input = validateEvaluateInput(raw);
  } catch (e) {
    throw ApplicationFailure.nonRetryable((e as Error).message, 'InvalidInput');
  }
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
  const prefix = reportPrefix(plan.runId, info.startTime, plan.split, input.crops, info.runId);
  const { evaluateShard } = evaluationActivities(input.device);
  const started = Date.now();  // workflow time: deterministic on replay
  let next = 0;
  const lane = async () => {
    while (next < plan.shards) {
      const shard = next++;
      const r = await evaluateShard({
        store: input.store, datasetName: input.datasetName, split: plan.split, shard, checkpointKey: plan.checkpointKey,
        crops: input.crops, batchSize: input.batchSize, reportPrefix: prefix, threads: input.threads,
      });
      progress.shardsDone++;
      progress.imagesDone += r.images;
    }
  };
  await Promise.all(Array.from({ length: Math.min(input.maxParallel, Math.max(1, plan.shards)) }, lane));
  progress.phase = 'reporting';
  const result = await cpu.writeEvaluationReport({
    store: input.store, datasetName: input.datasetName, plan, crops: input.crops, reportPrefix: prefix, createdAt: info.startTime.toISOString(),
    wallSeconds: (Date.now() - started) / 1000,
  });
  progress.phase = 'done';
  return result;
}
