// Renders a sample evaluation report (synthetic numbers: 10 Fashion-MNIST classes, 12
// epochs of training history) to a folder, to look at the report's layout and plots:
//   node dist/scripts/render-sample-report.js /tmp/sample-report
import { mkdir, writeFile } from 'fs/promises';
import { join } from 'path';

import { renderReport } from '../activities/report-render';
import type { EpochMetrics, EvaluationReport } from '../common/contract';
import { runKeys } from '../common/store-layout';

const CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];

// A deterministic confusion matrix: mostly right, with Fashion-MNIST's usual mix-ups among
// the upper-body garments.
export function sampleReport(): EvaluationReport {
  const perClassImages = 1000;
  const hard = new Set([0, 2, 4, 6]);
  const confusion = CLASSES.map((_, t) => {
    const row = CLASSES.map(() => 0);
    const wrong = hard.has(t) ? 60 + 15 * t : 8 + t;
    row[t] = perClassImages - wrong;
    const others = hard.has(t) ? [...hard].filter((c) => c !== t) : [(t + 1) % CLASSES.length];
    others.forEach((c, i) => { row[c] += Math.floor(wrong / others.length) + (i < wrong % others.length ? 1 : 0); });
    return row;
  });
  const images = perClassImages * CLASSES.length;
  const top1Correct = confusion.reduce((a, row, t) => a + row[t], 0);
  const top5Errors = 31;
  return {
    runId: 'fashion-mnist-sample', checkpointKey: runKeys('fashion-mnist-sample').checkpoint(11, 468, 1),
    epoch: 11, batch: 468, model: 'alexnet-32', dataset: 'fashion-mnist', split: 'test', crops: 10,
    images, shards: 4, loss: 0.2487,
    top1Error: 1 - top1Correct / images, top5Error: top5Errors / images,
    top1Accuracy: top1Correct / images, top5Accuracy: 1 - top5Errors / images,
    perClass: CLASSES.map((name, i) => ({
      index: i, name, images: perClassImages,
      top1Accuracy: confusion[i][i] / perClassImages, top5Accuracy: 1 - (i % 3) / perClassImages,
    })),
    confusion, imagesPerSecond: 812.5, seconds: images / 812.5, createdAt: '2026-01-01T00:00:00.000Z',
  };
}

// Twelve epochs under the paper's plateau rule: the LR drops by 10 after epochs 6 and 10.
export function sampleMetrics(): EpochMetrics[] {
  return Array.from({ length: 12 }, (_, epoch) => {
    const lr = epoch < 6 ? 0.01 : epoch < 10 ? 0.001 : 0.0001;
    const trainLoss = 0.2 + 0.9 * Math.exp(-epoch / 2.5);
    const valTop1 = 0.085 + 0.2 * Math.exp(-epoch / 2.2);
    return {
      kind: 'epoch', epoch, lr,
      train: {
        epoch, batches: 469, batchesThisAttempt: 469, resumedAt: 0, meanLoss: trainLoss, recentLoss: trainLoss * 0.95,
        checkpointKey: runKeys('fashion-mnist-sample').checkpoint(epoch, 469, 1),
        imagesPerSecond: 1450 + 10 * epoch, nativeSeconds: 38, seconds: 41, stalled: false, warnings: [],
      },
      validation: { epoch, split: 'val', images: 5000, loss: trainLoss + 0.05 + 0.004 * epoch, top1Error: valTop1, top5Error: valTop1 / 25, seconds: 6 },
    };
  });
}

async function run(): Promise<void> {
  const dir = process.argv[2];
  if (!dir) throw new Error('usage: node dist/scripts/render-sample-report.js <folder>');
  await mkdir(dir, { recursive: true });
  const out = await renderReport(sampleReport(), sampleMetrics());
  await writeFile(join(dir, 'report.json'), out.json);
  await writeFile(join(dir, 'report.md'), out.markdown);
  await writeFile(join(dir, 'report.html'), out.html);
  console.log(`wrote report.json, report.md and report.html to ${dir}`);
}

if (require.main === module) {
  run().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
