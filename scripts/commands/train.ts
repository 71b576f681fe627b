// alexnet train: starts TrainAlexNet through the Temporal client and follows it with a
// progress bar (epoch, batch, loss, images/s); alexnet status <workflowId> prints its
// progress query. The same workflow runs from the official CLI:
//   temporal workflow start --type TrainAlexNet --task-queue alexnet --input '{...}'
import type { TrainAlexNetInput } from '../../common/contract';
import { START_FLAGS, START_HELP, START_USAGE, startAndFollow } from '../start-and-follow';
import { CONNECTION_HELP } from '../temporal-connection';
import { intOption, numberOption, parse, required, UsageError } from './args';

const HELP = `usage: alexnet train --store URI --dataset-name NAME [--dataset URI] [--model alexnet] [--epochs 90]
                     [--batch-size 128] [--lr-policy JSON] [--lr 0.01] [--seed 0] [--image-size 256]
                     [--checkpoint-every 100] [--device cpu|cuda]
                     ${START_USAGE}

Starts TrainAlexNet (a worker must run: alexnet worker) and follows it until it ends,
then prints the result as one JSON line. --dataset prepares the images first when
datasets/NAME is not in the store yet. --lr-policy: {"type":"plateau"} (the paper's rule,
default), {"type":"step","everyEpochs":30}, {"type":"fixed","lr":0.01}.

${START_HELP}

${CONNECTION_HELP}`;

export async function train(argv: string[]): Promise<void> {
  const o = parse(argv, {
    ...START_FLAGS, store: { type: 'string' }, 'dataset-name': { type: 'string' }, dataset: { type: 'string' },
    model: { type: 'string' }, epochs: { type: 'string' }, 'batch-size': { type: 'string' }, 'lr-policy': { type: 'string' },
    lr: { type: 'string' }, seed: { type: 'string' }, 'image-size': { type: 'string' }, 'checkpoint-every': { type: 'string' },
    device: { type: 'string' },
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
  await startAndFollow(o, 'TrainAlexNet', input, {
    workflowId: `train-${input.datasetName}-${Date.now()}`,
    startedNote: (id) => `; follow it with: alexnet status ${id}`,
  });
}
