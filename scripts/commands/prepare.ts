// alexnet prepare: starts PrepareDataset through the Temporal client, follows it with a
// progress bar and prints a summary JSON object as its last line (--detach: the workflow
// id only).
import { DEFAULT_VALIDATION_FRACTION, type PrepareDatasetInput, type PrepareDatasetResult } from '../../common/contract';
import { manifestUri } from '../../common/store-layout';
import { START_FLAGS, START_HELP, START_USAGE, startAndFollow } from '../start-and-follow';
import { CONNECTION_HELP } from '../temporal-connection';
import { intOption, numberOption, parse, required } from './args';

const HELP = `usage: alexnet prepare --dataset URI --store URI [--name NAME] [--image-size 256] [--shard-size 1000] [--resize-kernel lanczos3|cubic|linear]
                       [--seed 0] [--validation-fraction 0.0833] [--parallel 8]
                       ${START_USAGE}

Starts the PrepareDataset workflow (needs a running worker: alexnet worker). A dataset
without a val split gets one carved out of train (--validation-fraction of each class,
default 1/12, chosen by --seed): training validates on it, never on the test split. Shows
progress and ends with one JSON line:
  {"workflowId","images","skipped","skippedByReason","shards","seconds","manifest"}

${START_HELP}

${CONNECTION_HELP}`;

function summary(store: string, result: PrepareDatasetResult): object {
  const splits = Object.values(result.manifest.splits);
  const byReason: Record<string, number> = {};
  for (const s of splits) for (const [k, v] of Object.entries(s.skippedByReason)) byReason[k] = (byReason[k] ?? 0) + v;
  return {
    images: splits.reduce((a, s) => a + s.images, 0),
    skipped: splits.reduce((a, s) => a + s.skipped, 0),
    skippedByReason: byReason,
    shards: splits.reduce((a, s) => a + s.shards, 0),
    seconds: result.seconds,
    manifest: manifestUri(store, result.manifest.name),
  };
}

export async function prepare(argv: string[]): Promise<void> {
  const o = parse(argv, {
    ...START_FLAGS, dataset: { type: 'string' }, store: { type: 'string' }, name: { type: 'string' },
    'image-size': { type: 'string' }, 'shard-size': { type: 'string' }, 'resize-kernel': { type: 'string' }, seed: { type: 'string' }, parallel: { type: 'string' },
    'validation-fraction': { type: 'string' },
  }, HELP);
  const input: PrepareDatasetInput = {
    dataset: required(o.dataset, 'dataset', HELP),
    store: required(o.store, 'store', HELP),
    name: o.name,
    imageSize: intOption(o['image-size'], 'image-size', 256),
    resizeKernel: o['resize-kernel'] as PrepareDatasetInput['resizeKernel'],
    shardSize: intOption(o['shard-size'], 'shard-size', 1000),
    seed: intOption(o.seed, 'seed', 0, 0),
    maxParallel: intOption(o.parallel, 'parallel', 8),
    validationFraction: numberOption(o['validation-fraction'], 'validation-fraction', DEFAULT_VALIDATION_FRACTION),
  };
  await startAndFollow(o, 'PrepareDataset', input, {
    workflowId: `prepare-${input.name ?? input.dataset.replace(/\/+$/, '').split('/').pop()}-${Date.now()}`,
    summary: (result) => summary(input.store, result),
  });
}
