// validate: the epoch's validation of a checkpoint on the val split (centre crop), with
// the same scoring as EvaluateAlexNet.
import { ApplicationFailure } from '@temporalio/common';

import type { ValidationResult } from '../common/contract';
import { datasetKeys } from '../common/store-layout';
import { heartbeat } from './activity-context';
import { readBatches } from './batch-reader';
import { readManifest, readMeanImage } from './dataset-files';
import { classesAbove, loadEvaluationNetwork, scoreBatch } from './scoring';
import { openStore } from './store';

// Top-1/top-5 error and mean loss of a checkpoint on a split (every image once, centre crop).
export async function validate(input: { store: string; dataset: string; split: string; checkpointKey: string; epoch: number; batchSize: number; threads?: number }): Promise<ValidationResult> {
  const t0 = Date.now();
  const store = openStore(input.store);
  const manifest = await readManifest(store, input.dataset);
  const split = manifest.splits[input.split];
  if (!split) throw ApplicationFailure.nonRetryable(`dataset '${input.dataset}' has no split '${input.split}'`, 'InvalidInput');
  const [net, mean] = await Promise.all([loadEvaluationNetwork(store, input.checkpointKey, input.threads), readMeanImage(store, input.dataset)]);
  const classes = net.config.classes;
  let images = 0, lossSum = 0, top1 = 0, top5 = 0;
  const keys = datasetKeys(input.dataset);
  const batchKeys = Array.from({ length: split.shards }, (_, i) => keys.batch(input.split, i));
  const expect = (i: number) => ({ images: split.shardImages[i], imageSize: manifest.imageSize, classes: manifest.classes });
  for await (const b of readBatches(store, batchKeys, { expect })) {
    await scoreBatch(net, b, b.key, mean, 1, input.batchSize, (probs, labels) => {
      labels.forEach((label, i) => {
        const higher = classesAbove(probs, i * classes, classes, label);
        lossSum += -Math.log(Math.max(probs[i * classes + label], 1e-30));
        if (higher >= 1) top1++;
        if (higher >= 5) top5++;
      });
      images += labels.length;
      heartbeat({ split: input.split, images });
    });
  }
  return { epoch: input.epoch, split: input.split, images, loss: lossSum / images, top1Error: top1 / images, top5Error: top5 / images, seconds: (Date.now() - t0) / 1000 };
}
