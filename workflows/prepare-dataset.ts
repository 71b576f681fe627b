// PrepareDataset: list the images, plan shards (seeded shuffle), preprocess every shard
// into a batch file (a sliding window of at most `maxParallel` activities, so even
// ImageNet's ~1,300 shards keep few activities pending and the history small), then merge
// the statistics and write the manifest. Deterministic workflow code only.
import { ApplicationFailure, defineQuery, setHandler } from '@temporalio/workflow';

import { cpuActivities } from './activity-proxies';
import { surfaceCause, validInput } from './failures';
import { DEFAULT_VALIDATION_FRACTION, PREPARE_DATASET_INPUT_FIELDS, RESIZE_KERNELS } from '../common/contract';
import type { PrepareDatasetInput, PrepareDatasetResult, PrepareProgress, ShardSummary, SplitSummary } from '../common/contract';
import { ArgumentError, inputObject, integerIn, numberIn, oneOf } from '../common/validate';
import { inLanes } from '../common/lanes';

const { writeListing, planDatasetShards, finalizeDataset } = cpuActivities({ startToCloseTimeout: '2 hours', heartbeatTimeout: '5 minutes' });
const { preprocessShard } = cpuActivities({ startToCloseTimeout: '1 hour', heartbeatTimeout: '2 minutes' });

export const prepareProgressQuery = defineQuery<PrepareProgress>('progress');

export type ValidPrepareInput = Required<Omit<PrepareDatasetInput, 'maxPixels'>> & { maxPixels?: number };

// Field-by-field validation; a bad input fails the workflow at once, non-retryably, with
// a message naming the field.
export function validatePrepareInput(raw: PrepareDatasetInput): ValidPrepareInput {
  const uri = (field: 'dataset' | 'store', v: unknown): string => {
    if (typeof v !== 'string' || v.trim() === '') throw new ArgumentError(field, `Expected a URI (s3://bucket/prefix, file:///dir or a path) for ${field} but received ${JSON.stringify(v)}`);
    return v;
  };
  inputObject(raw, PREPARE_DATASET_INPUT_FIELDS, 'the PrepareDataset input');
  const dataset = uri('dataset', raw.dataset);
  const store = uri('store', raw.store);
  const name = raw.name ?? dataset.replace(/\/+$/, '').split('/').pop() ?? '';
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/.test(name)) {
    throw new ArgumentError('name', `Expected a dataset name of letters, digits, '.', '_' or '-' for name but received ${JSON.stringify(name)}`);
  }
  return {
    dataset,
    store,
    name,
    imageSize: integerIn('imageSize', raw.imageSize ?? 256, 8, 1024),
    shardSize: integerIn('shardSize', raw.shardSize ?? 1000, 1, 100_000),
    seed: integerIn('seed', raw.seed ?? 0, 0, 2 ** 31 - 1),
    maxParallel: integerIn('maxParallel', raw.maxParallel ?? 8, 1, 256),
    maxPixels: raw.maxPixels === undefined ? undefined : integerIn('maxPixels', raw.maxPixels, 1, 2 ** 40),
    resizeKernel: oneOf('resizeKernel', raw.resizeKernel ?? 'lanczos3', RESIZE_KERNELS),
    validationFraction: validationFraction(raw.validationFraction),
  };
}

function validationFraction(v: unknown): number {
  const f = numberIn('validationFraction', v ?? DEFAULT_VALIDATION_FRACTION, 0, 0.5);
  if (f === 0) throw new ArgumentError('validationFraction', 'Expected a number above 0 and at most 0.5 for validationFraction but received 0: training validates on a split held out of train, never on test');
  return f;
}

export async function PrepareDataset(raw: PrepareDatasetInput): Promise<PrepareDatasetResult> {
  return prepareDataset(raw).catch(surfaceCause);
}

async function prepareDataset(raw: PrepareDatasetInput): Promise<PrepareDatasetResult> {
  const started = Date.now();
  const input = validInput(() => validatePrepareInput(raw));
  const progress: PrepareProgress = { phase: 'listing', shardsDone: 0, shardsTotal: 0, imagesDone: 0, skipped: 0 };
  setHandler(prepareProgressQuery, () => progress);

  const listing = await writeListing(input.dataset, input.store, input.name, { validationFraction: input.validationFraction, seed: input.seed });
  const splitNames = Object.keys(listing.splits).sort();
  const trainSplit = splitNames.includes('train') ? 'train' : splitNames[0];
  if (!trainSplit) throw ApplicationFailure.nonRetryable(`dataset ${input.dataset} has no images`, 'NoValidImages');

  progress.phase = 'planning';
  const splits: SplitSummary[] = [];
  for (const split of splitNames) {
    splits.push(await planDatasetShards({ store: input.store, name: input.name, split, seed: input.seed, shardSize: input.shardSize }));
  }

  progress.phase = 'preprocessing';
  const work = splits.flatMap((s) => Array.from({ length: s.shards }, (_, shard) => ({ split: s.split, shard })));
  progress.shardsTotal = work.length;
  const skippedSample: ShardSummary['skippedSample'] = [];
  let shardsReused = 0;
  await inLanes(work.length, input.maxParallel, async (i) => {
    const { split, shard } = work[i];
    const r = await preprocessShard({ dataset: input.dataset, store: input.store, name: input.name, split, shard, imageSize: input.imageSize, maxPixels: input.maxPixels, resizeKernel: input.resizeKernel });
    progress.shardsDone++;
    progress.imagesDone += r.images;
    progress.skipped += r.skippedCount;
    if (r.reused) shardsReused++;
    if (skippedSample.length < 50) skippedSample.push(...(r.skippedSample ?? []).slice(0, 50 - skippedSample.length));
  });

  progress.phase = 'merging';
  const manifest = await finalizeDataset({
    dataset: input.dataset, store: input.store, name: input.name, imageSize: input.imageSize,
    seed: input.seed, shardSize: input.shardSize, splits, trainSplit, resizeKernel: input.resizeKernel,
    carvedValidation: listing.carvedValidation,
  });
  progress.phase = 'done';
  return { manifest, skipped: skippedSample, shardsReused, seconds: (Date.now() - started) / 1000 };
}
