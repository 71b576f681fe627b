// Hostile batch files (issue 23, finding 8): a batch file that fails verification (labels of
// 1e9 or -1, 8x8 or 0x0 images, one channel, a count of 0, a wrong CRC) fails TrainAlexNet
// on the first attempt of trainEpoch with a non-retryable CorruptBatch naming the file and
// the check, instead of five attempts of the same error; validation and evaluation refuse
// them the same way; a read that fails (the store) stays retryable.
import test from 'ava';
import * as fs from 'fs';
import * as path from 'path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { ApplicationFailure } from '@temporalio/common';

import * as activities from '../activities';
import { type Batch, decodeBatch, encodeBatch } from '../activities/batch-format';
import { readBatches } from '../activities/batch-reader';
import { openStore, type ObjectStore } from '../activities/store';
import type { DatasetManifest } from '../common/contract';
import { datasetKeys } from '../common/store-layout';
import { startTrainingFixture, type TrainingFixture } from './temporal-helpers';

const QUEUE = 'hostile-batches';
let fixture: TrainingFixture;
let store: ObjectStore;
let manifest: DatasetManifest;

test.before(async () => {
  fixture = await startTrainingFixture('alexnet-hostile-batches-', QUEUE, { images: 200, shardSize: 100 });
  store = openStore(fixture.store);
  manifest = JSON.parse((await store.get(datasetKeys('fashion').manifest)).toString()) as DatasetManifest;
});

test.after.always(async () => {
  await fixture?.stop();
});

// Each hostile file: how it is made from a good one (a valid CRC unless said), and the
// check its refusal must name.
const images = (b: Batch, count: number, size: number, channels: number): Batch =>
  ({ count, height: size, width: size, channels, pixels: new Uint8Array(count * size * size * channels), labels: new Int32Array(count) });
const HOSTILE: { name: string; make: (b: Batch) => Buffer; check: RegExp }[] = [
  { name: 'label-1e9', make: (b) => encodeBatch({ ...b, labels: b.labels.map((l, i) => (i === 3 ? 1e9 : l)) }), check: /image 3 has label 1000000000, not a class of the dataset's 10/ },
  { name: 'label-minus-1', make: (b) => encodeBatch({ ...b, labels: b.labels.map((l, i) => (i === 0 ? -1 : l)) }), check: /image 0 has label -1, not a class/ },
  { name: 'images-8x8', make: (b) => encodeBatch(images(b, b.count, 8, 3)), check: /its images are 8x8 but the dataset's are 36x36/ },
  { name: 'images-0x0', make: (b) => encodeBatch(images(b, b.count, 0, 3)), check: /its images are 0x0 but the dataset's are 36x36/ },
  { name: 'one-channel', make: (b) => encodeBatch({ ...images(b, b.count, b.height, 1), labels: b.labels }), check: /its images have 1 channels, not 3 \(RGB\)/ },
  { name: 'count-0', make: (b) => encodeBatch(images(b, 0, b.height, 3)), check: /it holds no image \(count 0\)/ },
  {
    name: 'wrong-crc', check: /checksum mismatch \(corrupted\)/,
    make: (b) => {
      const buf = encodeBatch(b);
      buf[100] ^= 0xff;  // a pixel byte, the CRC left as it was
      return buf;
    },
  },
];

// A copy of the prepared dataset 'fashion' as `name` whose `split` shard 0 is the hostile file.
async function hostileDataset(name: string, split: string, make: (b: Batch) => Buffer): Promise<string> {
  const from = path.join(fixture.store, 'datasets', 'fashion');
  fs.cpSync(from, path.join(fixture.store, 'datasets', name), { recursive: true });
  const key = datasetKeys(name).batch(split, 0);
  await store.put(key, make(decodeBatch(await store.get(key), key)));
  return key;
}

const failureOf = (e: unknown) => e as ApplicationFailure;

test.serial('readBatches: each hostile file is a non-retryable CorruptBatch naming the file and the check; a failed read stays retryable', async (t) => {
  const split = manifest.splits.train;
  const expect = (i: number) => ({ images: split.shardImages[i], imageSize: manifest.imageSize, classes: manifest.classes });
  for (const h of HOSTILE) {
    const key = await hostileDataset(`unit-${h.name}`, 'train', h.make);
    const err = await t.throwsAsync(async () => {
      for await (const b of readBatches(store, [key], { expect })) void b;
    });
    t.true(err instanceof ApplicationFailure && failureOf(err).nonRetryable, `${h.name}: non-retryable`);
    t.is(failureOf(err).type, 'CorruptBatch', h.name);
    t.true(err!.message.includes(`batch file ${key} in ${store.uri} is invalid`), `${h.name} names the file: ${err!.message}`);
    t.regex(err!.message, h.check, h.name);
    t.regex(err!.message, /re-run PrepareDataset/);
  }
  // A store that fails to read once (a dropped connection): an ordinary, retryable error.
  const key = datasetKeys('fashion').batch('train', 0);
  const flaky: ObjectStore = Object.assign(Object.create(store) as ObjectStore, {
    get: () => Promise.reject(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })),
  });
  const err = await t.throwsAsync(async () => {
    for await (const b of readBatches(flaky, [key], { expect })) void b;
  });
  t.false(err instanceof ApplicationFailure, 'a transient read error is left for Temporal to retry');
  t.regex(err!.message, /ECONNRESET/);
});

test.serial('TrainAlexNet on the dev server: each hostile batch file fails the run on trainEpoch\'s first attempt, naming the file and the check', async (t) => {
  for (const h of HOSTILE) {
    const name = `train-${h.name}`;
    const key = await hostileDataset(name, 'train', h.make);
    const workflowId = `hostile-${h.name}`;
    const err = await t.throwsAsync(fixture.client.workflow.execute('TrainAlexNet', {
      taskQueue: QUEUE, workflowId,
      args: [{ store: fixture.store, datasetName: name, model: 'alexnet-32', epochs: 1, batchSize: 16, checkpointEvery: 2, lrPolicy: { type: 'fixed', lr: 0.01 }, seed: 1 }],
    }));
    // WorkflowFailedError <- ActivityFailure <- ApplicationFailure
    let cause: unknown = err;
    while (cause instanceof Error && !(cause instanceof ApplicationFailure)) cause = cause.cause;
    t.true(cause instanceof ApplicationFailure, `${h.name}: ${err!.message}`);
    t.is(failureOf(cause).type, 'CorruptBatch', h.name);
    t.true(failureOf(cause).message.includes(key), `${h.name} names ${key}: ${failureOf(cause).message}`);
    t.regex(failureOf(cause).message, h.check, h.name);
    // One attempt: Temporal records the last attempt's number on the activity's started event.
    const history = await fixture.client.workflow.getHandle(workflowId).fetchHistory();
    const scheduled = new Map<string, string>();
    for (const e of history.events ?? []) {
      const s = e.activityTaskScheduledEventAttributes;
      if (s) scheduled.set(String(e.eventId), s.activityType?.name ?? '');
    }
    const attempts = (history.events ?? []).flatMap((e) => {
      const s = e.activityTaskStartedEventAttributes;
      return s && scheduled.get(String(s.scheduledEventId)) === 'trainEpoch' ? [s.attempt ?? 0] : [];
    });
    t.deepEqual(attempts, [1], `${h.name}: trainEpoch ran once, not retried`);
  }
});

test.serial('validate and evaluateShard refuse a hostile batch file non-retryably too', async (t) => {
  const h = HOSTILE[0];
  for (const split of ['val', 'test']) {
    const name = `eval-${split}`;
    const key = await hostileDataset(name, split, h.make);
    await activities.initRun({ runId: `hostile-${split}`, store: fixture.store, model: 'alexnet-32', classes: 10, seed: 1 });
    const checkpointKey = (await activities.latestCheckpoint({ store: fixture.store, runId: `hostile-${split}` }))!.key;
    const run = split === 'val'
      ? () => new MockActivityEnvironment().run(activities.validate, { store: fixture.store, dataset: name, split, checkpointKey, epoch: 0, batchSize: 16 })
      : () => new MockActivityEnvironment().run(activities.evaluateShard, { store: fixture.store, datasetName: name, split, shard: 0, checkpointKey, crops: 1 as const, batchSize: 16, reportPrefix: `runs/hostile-${split}/reports/x` });
    const err = await t.throwsAsync(run());
    t.true(err instanceof ApplicationFailure && failureOf(err).nonRetryable, `${split}: ${err!.message}`);
    t.true(err!.message.includes(key), err!.message);
    t.regex(err!.message, h.check);
  }
});
