// alexnet train: starts TrainAlexNet through the Temporal client and follows it with a
// progress bar (epoch, batch, loss, images/s); alexnet status <workflowId> prints its
// progress query. The same workflow runs from the official CLI:
//   temporal workflow start --type TrainAlexNet --task-queue alexnet --input '{...}'
import type { InitFrom, TrainAlexNetInput } from '../../common/contract';
import { parseCheckpointKey } from '../../common/store-layout';
import { START_FLAGS, START_HELP, START_USAGE, startAndFollow } from '../start-and-follow';
import { CONNECTION_HELP } from '../temporal-connection';
import { intOption, numberOption, parse, required, UsageError } from './args';

const HELP = `usage: alexnet train --store URI --dataset-name NAME [--dataset URI] [--model alexnet] [--epochs 90]
                     [--batch-size 128] [--lr-policy JSON] [--lr 0.01] [--seed 0] [--image-size 256]
                     [--checkpoint-every 100] [--device cpu|cuda]
                     [--init-from RUN|CHECKPOINT_KEY|URI] [--reinit fc8,...] [--lr-mult fc8=10,conv1=0]
                     ${START_USAGE}

Starts TrainAlexNet (a worker must run: alexnet worker) and follows it until it ends,
then prints the result as one JSON line. --dataset prepares the images first when
datasets/NAME is not in the store yet. --lr-policy: {"type":"plateau"} (the paper's rule,
default), {"type":"step","everyEpochs":30}, {"type":"fixed","lr":0.01}.

Fine-tuning: --init-from starts from another run's weights (its promoted checkpoint, else
its newest), a checkpoint key in the same store (runs/R/checkpoints/...), or a safetensors
file at a URI (s3://... or file:///...). --reinit: the layers drawn afresh (default fc8 when
the class count differs). --lr-mult: per-layer factors on the learning rate (0 freezes a
layer; 10 is usual for a new one).

${START_HELP}

${CONNECTION_HELP}`;

// --init-from: a URI is a weights file, a checkpoint key names a checkpoint, else a run.
function initFromOption(value: string): InitFrom {
  if (value.trim() === '') throw new UsageError('--init-from needs a run id, a checkpoint key or a safetensors URI');
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) return { weights: value };
  return parseCheckpointKey(value) ? { checkpoint: value } : { run: value };
}

// --lr-mult fc8=10,conv1=0
function lrMultOption(value: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const part of value.split(',')) {
    const m = /^\s*([A-Za-z0-9_.-]+)\s*=\s*([0-9.eE+-]+)\s*$/.exec(part);
    if (!m || !Number.isFinite(Number(m[2]))) throw new UsageError(`--lr-mult takes LAYER=FACTOR pairs such as fc8=10,conv1=0, got '${part}'`);
    out[m[1]] = Number(m[2]);
  }
  return out;
}

export async function train(argv: string[]): Promise<void> {
  const o = parse(argv, {
    ...START_FLAGS, store: { type: 'string' }, 'dataset-name': { type: 'string' }, dataset: { type: 'string' },
    model: { type: 'string' }, epochs: { type: 'string' }, 'batch-size': { type: 'string' }, 'lr-policy': { type: 'string' },
    lr: { type: 'string' }, seed: { type: 'string' }, 'image-size': { type: 'string' }, 'checkpoint-every': { type: 'string' },
    device: { type: 'string' }, 'init-from': { type: 'string' }, reinit: { type: 'string' }, 'lr-mult': { type: 'string' },
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
    ...(o['init-from'] !== undefined ? { initFrom: initFromOption(o['init-from']) } : {}),
    ...(o.reinit !== undefined ? { reinit: o.reinit.split(',').map((l) => l.trim()) } : {}),
    ...(o['lr-mult'] !== undefined ? { lrMultipliers: lrMultOption(o['lr-mult']) } : {}),
  };
  await startAndFollow(o, 'TrainAlexNet', input, {
    workflowId: `train-${input.datasetName}-${Date.now()}`,
    startedNote: (id) => `; follow it with: alexnet status ${id}`,
  });
}
