// PrepareDataset end to end: the real Temporal dev server, a worker in this process, real
// Fashion-MNIST JPEGs (Debian's dataset-fashion-mnist) plus a corpus of bad files, into a
// local store and into MinIO. Batch pixels are compared with sharp's own decode of each
// source image, labels with the source's class folders.
import test from 'ava';
import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import { Client, WorkflowFailedError } from '@temporalio/client';

import { decodeBatch } from '../activities/batch-format';
import { addImage, DatasetStats, emptySums, finalizeStats } from '../native/image-stats';
import { openStore } from '../activities/store';
import { datasetKeys } from '../common/store-layout';
import type { TemporalService } from '../infra/services';
import type { Shard } from '../common/shard-plan';
import { PrepareDatasetInput, PrepareDatasetResult } from '../common/contract';
import { CLI, tmpDir } from './helpers';
import { startTrainingFixture, WorkerFixture } from './temporal-helpers';
import { execFile } from 'child_process';

const QUEUE = 'prepare-test';
let fixture: WorkerFixture;
let temporal: TemporalService;
let client: Client;
let dataset: string;

test.before(async () => {
  // MinIO with bucket 'alexnet'; the S3 store reads the standard AWS environment, as a
  // real deployment would. Each test prepares the data set itself.
  fixture = await startTrainingFixture('alexnet-prepare-', QUEUE, { images: 120, minio: 'alexnet', prepare: false });
  ({ temporal, client, dataset } = fixture);
  // The bad corpus, inside a real class folder of the train split.
  const bad = path.join(dataset, 'train', 'bag');
  const red = sharp({ create: { width: 40, height: 30, channels: 3, background: { r: 220, g: 20, b: 20 } } });
  const jpeg = await red.clone().jpeg().toBuffer();
  fs.writeFileSync(path.join(bad, 'bad-zero.jpg'), Buffer.alloc(0));
  fs.writeFileSync(path.join(bad, 'bad-text.JPEG'), 'not an image\n');
  fs.writeFileSync(path.join(bad, 'bad-truncated.jpg'), jpeg.subarray(0, 200));
  fs.writeFileSync(path.join(bad, 'odd-png.JPEG'), await red.clone().png().toBuffer());
  fs.writeFileSync(path.join(bad, 'odd-cmyk.jpg'), await red.clone().toColourspace('cmyk').jpeg().toBuffer());
});

test.after.always(async () => {
  await fixture?.stop();
});

async function prepare(input: PrepareDatasetInput, id: string): Promise<PrepareDatasetResult> {
  return client.workflow.execute('PrepareDataset', { taskQueue: QUEUE, workflowId: id, args: [input] });
}

async function checkStore(t: import('ava').ExecutionContext, storeUri: string, result: PrepareDatasetResult) {
  const store = openStore(storeUri);
  const keys = datasetKeys('fashion');
  const { manifest } = result;
  // Fashion-MNIST ships no val split: 1/12 of each training class is carved out as one.
  const { train, val } = manifest.splits;
  t.is(manifest.carvedValidation?.images, val.listed);
  t.true(val.listed >= 5 && val.listed <= 15, `val holds about 1/12 of 125: ${val.listed}`);
  t.is(train.listed + val.listed, 125);
  t.is(train.images + val.images, 122, 'the PNG and the CMYK JPEG are converted and kept');
  t.is(train.skipped + val.skipped, 3);
  const reasons: Record<string, number> = {};
  for (const s of [train, val]) for (const [k, v] of Object.entries(s.skippedByReason)) reasons[k] = (reasons[k] ?? 0) + v;
  t.deepEqual(reasons, { 'empty file': 1, 'not an image': 1, 'corrupt or truncated JPEG': 1 });
  t.is(manifest.splits.test.images, 120);
  t.is(manifest.classes, 10);
  const classes = JSON.parse((await store.get(keys.classes)).toString()) as string[];
  let compared = 0;
  const trainSums = emptySums(32, 32);  // the plain reference over every train image read back
  for (const split of ['train', 'val', 'test']) {
    for (let i = 0; i < manifest.splits[split].shards; i++) {
      const shard = JSON.parse((await store.get(keys.shard(split, i))).toString()) as Shard;
      const batch = decodeBatch(await store.get(keys.batch(split, i)), keys.batch(split, i));
      if (split === 'train') for (let j = 0; j < batch.count; j++) addImage(trainSums, batch.pixels.subarray(j * 3072, (j + 1) * 3072));
      const kept = [];
      for (const img of shard.images) if (!/bad-/.test(img.key)) kept.push(img);
      t.is(batch.count, kept.length);
      for (let j = 0; j < kept.length; j += 7) {  // a sample of every shard
        const src = fs.readFileSync(path.join(dataset, kept[j].key));
        const expected = await sharp(src).rotate().flatten({ background: '#000' }).resize(32, 32, { fit: 'cover' }).toColourspace('srgb').raw().toBuffer();
        t.true(Buffer.from(batch.pixels.subarray(j * 3072, (j + 1) * 3072)).equals(expected), `pixels of ${kept[j].key}`);
        t.is(batch.labels[j], kept[j].label);
        t.is(classes[batch.labels[j]], kept[j].key.split('/')[1], `label of ${kept[j].key} is its class folder`);
        compared++;
      }
    }
  }
  t.true(compared > 30);
  const stats = JSON.parse((await store.get(keys.stats)).toString()) as DatasetStats;
  t.is(stats.images, train.images, 'the mean image and PCA come from the training images only');
  t.is(stats.pcaEigenvalues.length, 3);
  t.true(stats.meanRgb.every((m) => m > 10 && m < 200), `mean RGB ${stats.meanRgb}`);
  // The shards' native sums, merged, equal the reference over the batches read back.
  t.deepEqual(stats, { ...finalizeStats(trainSums).stats, meanImageKey: keys.meanImage });
}

test.serial('PrepareDataset: Fashion-MNIST and bad files into a local store; a re-run reuses every shard', async (t) => {
  const store = tmpDir('alexnet-store-');
  const input = { dataset, store, name: 'fashion', imageSize: 32, shardSize: 50, seed: 3 };
  const result = await prepare(input, 'prepare-local-1');
  await checkStore(t, store, result);
  t.is(result.shardsReused, 0);
  const again = await prepare(input, 'prepare-local-2');
  const shards = (r: PrepareDatasetResult) => Object.values(r.manifest.splits).reduce((a, s) => a + s.shards, 0);
  t.is(again.shardsReused, shards(again));
  t.deepEqual(again.manifest.splits, result.manifest.splits);
  // Another seed plans other shards (and carves another val) under the same keys: no
  // shard made from the old plan may be reused.
  const reseeded = await prepare({ ...input, seed: 4 }, 'prepare-local-3');
  t.is(reseeded.shardsReused, 0);
  await checkStore(t, store, reseeded);
});

test.serial('PrepareDataset: into MinIO (s3://) gives the same batches', async (t) => {
  const result = await prepare({ dataset, store: 's3://alexnet/run1', name: 'fashion', imageSize: 32, shardSize: 50, seed: 3 }, 'prepare-s3');
  await checkStore(t, 's3://alexnet/run1', result);
});

test.serial('PrepareDataset: a bad input fails at once, non-retryably, naming the field', async (t) => {
  const err = await t.throwsAsync(prepare({ dataset, store: tmpDir(), shardSize: 0 }, 'prepare-bad-input'), { instanceOf: WorkflowFailedError });
  t.regex(err!.cause?.message ?? '', /for shardSize but received 0/);
});

test.serial('PrepareDataset: a data set with no valid image fails non-retryably with a clear message', async (t) => {
  const empty = tmpDir('alexnet-empty-');
  fs.mkdirSync(path.join(empty, 'train', 'cats'), { recursive: true });
  fs.writeFileSync(path.join(empty, 'train', 'cats', 'a.jpg'), 'text, not a JPEG');
  const err = await t.throwsAsync(prepare({ dataset: empty, store: tmpDir(), imageSize: 32 }, 'prepare-empty'), { instanceOf: WorkflowFailedError });
  t.regex(err!.cause?.message ?? '', /no valid image in split 'train'/);
});

test.serial('alexnet prepare --wait: progress to stderr, a JSON summary as the last line', async (t) => {
  const store = tmpDir('alexnet-store-cli-');
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, [CLI, 'prepare', '--dataset', dataset, '--store', store, '--name', 'fashion', '--image-size', '32', '--shard-size', '100',
      '--task-queue', QUEUE, '--id', 'prepare-cli', '--wait'], { env: { ...process.env, TEMPORAL_ADDRESS: temporal.address } }, (err, out, errOut) => (err ? reject(new Error(`${err.message}\n${errOut}`)) : resolve(out)));
  });
  const summary = JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, unknown>;
  t.like(summary, { workflowId: 'prepare-cli', images: 242, skipped: 3, shards: 5 });
  t.deepEqual(summary.skippedByReason, { 'empty file': 1, 'not an image': 1, 'corrupt or truncated JPEG': 1 });
  t.true(typeof summary.seconds === 'number');
});
