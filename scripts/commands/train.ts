// alexnet train: starts TrainAlexNet through the Temporal client and follows it with a
// progress bar (epoch, batch, loss, images/s); alexnet status <workflowId> prints its
// progress query. The same workflow runs from the official CLI:
//   temporal workflow start --type TrainAlexNet --task-queue alexnet --input '{...}'
import { TASK_QUEUE, TrainAlexNetInput, TrainProgress } from '../../workflows/shared';
import { currentBatch, followTraining, settleAll } from '../follow';
import { CONNECTION_FLAGS, CONNECTION_HELP, connectClient } from '../temporal-connection';
import { intOption, numberOption, parse, required, UsageError } from './args';

const HELP = `usage: alexnet train --store URI --dataset-name NAME [--dataset URI] [--model alexnet] [--epochs 90]
                     [--batch-size 128] [--lr-policy JSON] [--lr 0.01] [--seed 0] [--image-size 256]
                     [--checkpoint-every 100] [--device cpu|cuda] [--id WORKFLOW_ID] [--task-queue alexnet]
                     [--detach] [connection flags]

Starts TrainAlexNet (a worker must run: alexnet worker) and follows it until it ends
(--detach: print the workflow id and return). --dataset prepares the images first when
datasets/NAME is not in the store yet. --lr-policy: {"type":"plateau"} (the paper's rule,
default), {"type":"step","everyEpochs":30}, {"type":"fixed","lr":0.01}.

${CONNECTION_HELP}`;

export async function train(argv: string[]): Promise<void> {
  const o = parse(argv, {
    ...CONNECTION_FLAGS, store: { type: 'string' }, 'dataset-name': { type: 'string' }, dataset: { type: 'string' },
    model: { type: 'string' }, epochs: { type: 'string' }, 'batch-size': { type: 'string' }, 'lr-policy': { type: 'string' },
    lr: { type: 'string' }, seed: { type: 'string' }, 'image-size': { type: 'string' }, 'checkpoint-every': { type: 'string' },
    device: { type: 'string' }, id: { type: 'string' }, 'task-queue': { type: 'string' }, detach: { type: 'boolean' },
  }, HELP);
  let lrPolicy: unknown;
  if (o['lr-policy']) {
    try {
      lrPolicy = JSON.parse(o['lr-policy']);
    } catch {
      throw new UsageError(`--lr-policy is not JSON: ${o['lr-policy']}`);
    }
  } else if (o.lr) lrPolicy = { type: 'plateau', initialLr: numberOption(o.lr, 'lr', 0.01) };
  const input: TrainAlexNetInput = {
    store: required(o.store, 'store', HELP), datasetName: required(o['dataset-name'], 'dataset-name', HELP), dataset: o.dataset,
    model: o.model, epochs: o.epochs ? intOption(o.epochs, 'epochs', 90) : undefined, batchSize: o['batch-size'] ? intOption(o['batch-size'], 'batch-size', 128) : undefined,
    lrPolicy, seed: o.seed ? intOption(o.seed, 'seed', 0, 0) : undefined, imageSize: o['image-size'] ? intOption(o['image-size'], 'image-size', 256) : undefined,
    checkpointEvery: o['checkpoint-every'] ? intOption(o['checkpoint-every'], 'checkpoint-every', 100) : undefined,
    device: o.device as TrainAlexNetInput['device'],
  };
  const { client, connection, settings } = await connectClient(o);
  try {
    const workflowId = o.id ?? `train-${input.datasetName}-${Date.now()}`;
    const handle = await client.workflow.start('TrainAlexNet', { taskQueue: o['task-queue'] ?? TASK_QUEUE, workflowId, args: [input] });
    console.error(`started TrainAlexNet ${workflowId} on ${settings.describe}; follow it with: alexnet status ${workflowId}`);
    if (o.detach) {
      console.log(JSON.stringify({ workflowId }));
      return;
    }
    const result = await followTraining(handle);
    console.log(JSON.stringify({ workflowId, ...result }));
  } finally {
    await connection.close();
  }
}

export async function status(argv: string[]): Promise<void> {
  const [workflowId, ...rest] = argv;
  if (!workflowId || workflowId.startsWith('-')) throw new UsageError(`usage: alexnet status <workflowId> [connection flags]\n\n${CONNECTION_HELP}`);
  const o = parse(rest, { ...CONNECTION_FLAGS }, CONNECTION_HELP);
  const { client, connection } = await connectClient(o);
  try {
    const handle = client.workflow.getHandle(workflowId);
    // Both settled before the connection closes (Promise.all would leave one running).
    const [progress, current] = await settleAll<[TrainProgress, Awaited<ReturnType<typeof currentBatch>>]>([handle.query<TrainProgress>('progress'), currentBatch(handle)]);
    console.log(JSON.stringify({ ...progress, currentBatch: current }, null, 2));
  } finally {
    await connection.close();
  }
}
