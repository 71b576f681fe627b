// alexnet prepare: starts PrepareDataset through the Temporal client; with --wait follows
// it with a progress bar and prints a summary JSON object as its last line.
import { DEFAULT_VALIDATION_FRACTION, PrepareDatasetInput, TASK_QUEUE } from '../../workflows/shared';
import { followPrepare } from '../follow';
import { CONNECTION_FLAGS, CONNECTION_HELP, connectClient } from '../temporal-connection';
import { intOption, numberOption, parse, required } from './args';

const HELP = `usage: alexnet prepare --dataset URI --store URI [--name NAME] [--image-size 256] [--shard-size 1000] [--resize-kernel lanczos3|cubic|linear]
                       [--seed 0] [--validation-fraction 0.0833] [--parallel 8] [--id WORKFLOW_ID] [--task-queue alexnet] [--wait] [connection flags]

Starts the PrepareDataset workflow (needs a running worker: alexnet worker). A dataset
without a val split gets one carved out of train (--validation-fraction of each class,
default 1/12, chosen by --seed): training validates on it, never on the test split. With --wait,
shows progress and ends with one JSON line:
  {"workflowId","images","skipped","skippedByReason","shards","seconds","manifest"}

${CONNECTION_HELP}`;

export async function prepare(argv: string[]): Promise<void> {
  const o = parse(argv, {
    ...CONNECTION_FLAGS, dataset: { type: 'string' }, store: { type: 'string' }, name: { type: 'string' },
    'image-size': { type: 'string' }, 'shard-size': { type: 'string' }, 'resize-kernel': { type: 'string' }, seed: { type: 'string' }, parallel: { type: 'string' },
    'validation-fraction': { type: 'string' }, id: { type: 'string' }, wait: { type: 'boolean' }, 'task-queue': { type: 'string' },
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
  const { client, connection, settings } = await connectClient(o);
  try {
    const workflowId = o.id ?? `prepare-${input.name ?? input.dataset.replace(/\/+$/, '').split('/').pop()}-${Date.now()}`;
    const handle = await client.workflow.start('PrepareDataset', { taskQueue: o['task-queue'] ?? TASK_QUEUE, workflowId, args: [input] });
    console.error(`started PrepareDataset ${workflowId} on ${settings.describe}`);
    if (!o.wait) {
      console.log(JSON.stringify({ workflowId }));
      return;
    }
    const result = await followPrepare(handle);
    const splits = Object.values(result.manifest.splits);
    const byReason: Record<string, number> = {};
    for (const s of splits) for (const [k, v] of Object.entries(s.skippedByReason)) byReason[k] = (byReason[k] ?? 0) + v;
    console.log(JSON.stringify({
      workflowId,
      images: splits.reduce((a, s) => a + s.images, 0),
      skipped: splits.reduce((a, s) => a + s.skipped, 0),
      skippedByReason: byReason,
      shards: splits.reduce((a, s) => a + s.shards, 0),
      seconds: result.seconds,
      manifest: `${input.store.replace(/\/+$/, '')}/datasets/${result.manifest.name}/manifest.json`,
    }));
  } finally {
    await connection.close();
  }
}
