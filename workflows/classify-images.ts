// ClassifyImages (batch inference): resolve the checkpoint once (a key, or a run's
// promoted checkpoint, else its newest) and list the source into shard files in the store
// (planClassification: the listing never travels in a payload), classify every shard into
// its part file (a sliding window of at most maxParallel activities, over as many workers
// as poll the queue; a retried shard reuses or rewrites its own part), then check every
// listed image is in exactly one part line and write summary.json. With `features`, each
// shard also writes its images' features beside its part (the prefix is then an index for
// `alexnet neighbours`) and the summary counts them. Continues as new when
// the server suggests it, so any number of shards fits. Deterministic workflow code only.
import { continueAsNew, defineQuery, setHandler, workflowInfo } from '@temporalio/workflow';

import { cpuActivities, shardActivities } from './activity-proxies';
import { surfaceCause, validInput } from './failures';
import { CLASSIFY_IMAGES_INPUT_FIELDS, FEATURE_LAYERS } from '../common/contract';
import type { ClassificationPlan, ClassifyImagesInput, ClassifyImagesResult, ClassifyProgress } from '../common/contract';
import { ArgumentError, checkpointRef, inputObject, integerIn, nonEmptyString, oneOf } from '../common/validate';
import { inLanes } from '../common/lanes';

// Listing a large bucket and reading every part take a while: heartbeated, so a lost
// worker is noticed in minutes.
const cpu = cpuActivities({ startToCloseTimeout: '2 hours', heartbeatTimeout: '2 minutes' });

export const classifyProgressQuery = defineQuery<ClassifyProgress>('progress');

export type ValidClassifyInput = Required<Omit<ClassifyImagesInput, 'output' | 'threads' | 'features'>> & Pick<ClassifyImagesInput, 'output' | 'threads' | 'features'>;

function sourceField(v: unknown): string {
  const s = nonEmptyString('source', v);
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\//.exec(s)?.[1]?.toLowerCase();
  if ((scheme !== undefined && scheme !== 's3' && scheme !== 'file') || /^s3:\/\/(\/|$)/i.test(s)) {
    throw new ArgumentError('source', `Expected a folder path, file:///dir or s3://bucket/prefix for source but received ${JSON.stringify(s)}`);
  }
  return s;
}

// A key prefix in the store, returned ending in '/'.
function outputField(v: unknown): string | undefined {
  if (v === undefined) return undefined;
  const s = nonEmptyString('output', v);
  const trimmed = s.replace(/\/+$/, '');
  if (trimmed === '' || s.startsWith('/') || /[\\\0]/.test(s) || trimmed.split('/').some((seg) => seg === '' || seg === '.' || seg === '..')) {
    throw new ArgumentError('output', `Expected a key prefix in the store (relative, e.g. "predictions/job-1/"; no empty, '.' or '..' segments) for output but received ${JSON.stringify(s)}`);
  }
  return `${trimmed}/`;
}

export function validateClassifyInput(raw: ClassifyImagesInput): ValidClassifyInput {
  inputObject(raw, CLASSIFY_IMAGES_INPUT_FIELDS, 'the ClassifyImages input');
  const crops = raw.crops ?? 1;
  if (crops !== 1 && crops !== 10) throw new ArgumentError('crops', `Expected 1 (centre crop) or 10 (the paper's ten patches) for crops but received ${JSON.stringify(crops)}`);
  const features = raw.features === undefined ? undefined : oneOf('features', raw.features, FEATURE_LAYERS);
  if (features && crops !== 1) throw new ArgumentError('crops', `Expected crops 1 with features (they are the centre crop's) but received ${crops}`);
  return {
    store: nonEmptyString('store', raw.store),
    checkpoint: checkpointRef('checkpoint', raw.checkpoint, 'its promoted checkpoint, else its newest'),
    source: sourceField(raw.source),
    output: outputField(raw.output),
    topK: integerIn('topK', raw.topK ?? 5, 1, 1000),
    crops,
    shardSize: integerIn('shardSize', raw.shardSize ?? 1000, 1, 100_000),
    maxParallel: integerIn('maxParallel', raw.maxParallel ?? 4, 1, 256),
    device: oneOf('device', raw.device ?? 'cpu', ['cpu', 'cuda'] as const),
    threads: raw.threads === undefined ? undefined : integerIn('threads', raw.threads, 1, 1024),
    features,
  };
}

// What continueAsNew carries: the plan (the listing is in the store) and where the job stands.
export interface ClassifyCarry {
  plan: ClassificationPlan;
  next: number;             // the first shard not started
  shardsDone: number;
  imagesDone: number;
  skipped: number;
  startedMs: number;        // workflow time the first shard started
  createdAt: string;        // the first run's start
}

export async function ClassifyImages(raw: ClassifyImagesInput, carry?: ClassifyCarry): Promise<ClassifyImagesResult> {
  const input = validInput(() => validateClassifyInput(raw));
  return classify(raw, input, carry).catch(surfaceCause);
}

async function classify(raw: ClassifyImagesInput, input: ValidClassifyInput, carry?: ClassifyCarry): Promise<ClassifyImagesResult> {
  const progress: ClassifyProgress = {
    phase: 'planning', shardsDone: carry?.shardsDone ?? 0, shardsTotal: carry?.plan.shards ?? 0, listed: carry?.plan.images ?? 0,
    imagesDone: carry?.imagesDone ?? 0, skipped: carry?.skipped ?? 0, checkpointKey: carry?.plan.checkpointKey, output: carry?.plan.output,
  };
  setHandler(classifyProgressQuery, () => progress);
  const info = workflowInfo();
  const createdAt = carry?.createdAt ?? info.startTime.toISOString();
  const plan = carry?.plan ?? await cpu.planClassification({
    store: input.store, source: input.source, checkpoint: input.checkpoint, output: input.output, job: info.workflowId, shardSize: input.shardSize,
  });
  Object.assign(progress, { phase: 'classifying', checkpointKey: plan.checkpointKey, output: plan.output, shardsTotal: plan.shards, listed: plan.images });
  const { classifyShard } = shardActivities(input.device);
  const started = carry?.startedMs ?? Date.now();  // workflow time: deterministic on replay
  const first = carry?.next ?? 0;
  // Shards are handed out in order: once the server suggests continuing as new, no lane
  // starts another, and the first one not started is where the next run begins.
  let resumeAt: number | undefined;
  await inLanes(plan.shards - first, input.maxParallel, async (j) => {
    const shard = first + j;
    if (resumeAt !== undefined) return;
    if (workflowInfo().continueAsNewSuggested) {
      resumeAt = shard;
      return;
    }
    const r = await classifyShard({
      store: input.store, source: input.source, output: plan.output, shard, checkpointKey: plan.checkpointKey,
      topK: input.topK, crops: input.crops, device: input.device, threads: input.threads,
      ...(input.features ? { features: input.features } : {}),
    });
    progress.shardsDone++;
    progress.imagesDone += r.images;
    progress.skipped += r.skipped;
  });
  if (resumeAt !== undefined) {
    await continueAsNew<typeof ClassifyImages>(raw, {
      plan, next: resumeAt, shardsDone: progress.shardsDone, imagesDone: progress.imagesDone, skipped: progress.skipped, startedMs: started, createdAt,
    });
  }
  progress.phase = 'summarizing';
  const result = await cpu.writeClassificationSummary({
    store: input.store, source: input.source, plan, topK: input.topK, crops: input.crops, createdAt, wallSeconds: (Date.now() - started) / 1000,
    ...(input.features ? { features: input.features } : {}),
  });
  progress.phase = 'done';
  return result;
}
