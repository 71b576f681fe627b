// Training: exact resume of an interrupted epoch (the activity cancelled mid-epoch and
// retried ends bitwise identical to an uninterrupted epoch), and TrainAlexNet end to end
// on real Fashion-MNIST through the dev server (epochs, validation, LR policy, metrics).
import test from 'ava';
import * as path from 'path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';

import * as activities from '../activities';
import { importFashionMnist } from '../activities/fashion-mnist';
import { openStore } from '../activities/store';
import { runKeys } from '../activities/store-layout';
import { binaryPath, startTemporal, TemporalService } from '../infra/services';
import { execFile } from 'child_process';
import { promisify } from 'util';
import type { EpochResult, TrainEpochInput } from '../workflows/shared';
import { tmpDir } from './helpers';

const QUEUE = 'train-test';
let temporal: TemporalService;
let worker: Worker;
let running: Promise<void>;
let client: Client;
let store: string;

test.before(async () => {
  const dir = tmpDir('alexnet-train-');
  temporal = await startTemporal({ dir: path.join(dir, 'temporal') });
  const nativeConnection = await NativeConnection.connect({ address: temporal.address });
  worker = await Worker.create({ connection: nativeConnection, taskQueue: QUEUE, activities, workflowsPath: path.resolve(__dirname, '..', 'workflows', 'index.js') });
  running = worker.run();
  client = new Client({ connection: await Connection.connect({ address: temporal.address }) });
  const images = path.join(dir, 'fashion');
  await importFashionMnist(images, { limit: 640 });
  store = path.join(dir, 'store');
  await client.workflow.execute('PrepareDataset', { taskQueue: QUEUE, workflowId: 'train-test-prepare', args: [{ dataset: images, store, name: 'fashion', imageSize: 36, shardSize: 200 }] });
});

test.after.always(async () => {
  worker?.shutdown();
  await running?.catch(() => undefined);
  await client?.connection.close();
  await temporal?.stop();
});

const epochInput = (runId: string): TrainEpochInput => ({
  runId, store, dataset: 'fashion', trainSplit: 'train', epoch: 0, lr: 0.01, batchSize: 32, seed: 5,
  crop: 32, pcaSigma: 0.1, checkpointEvery: 4, stallBatches: 1000,
});

test.serial('trainEpoch: an epoch cancelled mid-way and retried ends bitwise identical to an uninterrupted one', async (t) => {
  const s = openStore(store);
  for (const runId of ['straight', 'interrupted']) await activities.initRun({ runId, store, model: 'alexnet-32', classes: 10, seed: 5 });
  const straight = await new MockActivityEnvironment({ attempt: 1 }).run(activities.trainEpoch, epochInput('straight')) as EpochResult;
  t.is(straight.batches, 20);

  const env = new MockActivityEnvironment({ attempt: 1 });
  env.on('heartbeat', (d: { batch: number }) => {
    if (d.batch === 9) env.cancel();
  });
  await t.throwsAsync(env.run(activities.trainEpoch, epochInput('interrupted')));
  const latest = JSON.parse((await s.get(runKeys('interrupted').latest)).toString()) as { batch: number };
  t.true(latest.batch >= 9 && latest.batch < 20, `checkpointed at batch ${latest.batch} when cancelled`);
  const resumed = await new MockActivityEnvironment({ attempt: 2 }).run(activities.trainEpoch, epochInput('interrupted')) as EpochResult;
  t.is(resumed.resumedAt, latest.batch);
  t.is(resumed.batchesThisAttempt, 20 - latest.batch, 'no batch trained twice or skipped');
  const a = await s.get(straight.checkpointKey);
  const b = await s.get(resumed.checkpointKey);
  const strip = (buf: Buffer) => buf.subarray(8 + Number(buf.readBigUInt64LE(0)));  // tensor bytes (metadata names the attempt)
  t.true(strip(a).equals(strip(b)), 'weights, momentum and RNG state identical');
});

test.serial('TrainAlexNet: trains alexnet-32 on Fashion-MNIST, validates each epoch, writes metrics', async (t) => {
  const result = await client.workflow.execute('TrainAlexNet', {
    taskQueue: QUEUE, workflowId: 'train-e2e',
    args: [{ store, datasetName: 'fashion', model: 'alexnet-32', epochs: 2, batchSize: 16, checkpointEvery: 10, lrPolicy: { type: 'fixed', lr: 0.01 }, seed: 1 }],
  }) as { epochs: number; lastValidation: { top1Error: number; top5Error: number; images: number } };
  t.is(result.epochs, 2);
  t.is(result.lastValidation.images, 640, 'every test image counted once');
  t.log(`top-1 error after 2 epochs of 640 images: ${result.lastValidation.top1Error}`);
  t.true(result.lastValidation.top1Error < 0.8, `top-1 error ${result.lastValidation.top1Error} is clearly below chance (0.9)`);
  t.true(result.lastValidation.top5Error <= result.lastValidation.top1Error);
  const metrics = (await openStore(store).get(runKeys('train-e2e').metrics)).toString().trim().split('\n').map((l) => JSON.parse(l) as { epoch: number });
  t.deepEqual(metrics.map((m) => m.epoch), [0, 1]);
});

test.serial('TrainAlexNet: bad input fails at once naming the field', async (t) => {
  const err = await t.throwsAsync(client.workflow.execute('TrainAlexNet', { taskQueue: QUEUE, workflowId: 'train-bad', args: [{ store, datasetName: 'fashion', batchSize: 0 }] }));
  t.regex((err as Error & { cause?: Error }).cause?.message ?? '', /for batchSize but received 0/);
});

test.serial('official temporal CLI: start TrainAlexNet, query progress, signal stop', async (t) => {
  const cli = binaryPath('temporal');
  // Asynchronous: the worker runs in this process and must keep serving while the CLI waits.
  const run = async (...args: string[]) => (await promisify(execFile)(cli, [...args, '--address', temporal.address], { encoding: 'utf8' })).stdout;
  const input = { store, datasetName: 'fashion', model: 'alexnet-32', epochs: 50, batchSize: 16, checkpointEvery: 5, lrPolicy: { type: 'fixed', lr: 0.01 } };
  await run('workflow', 'start', '--type', 'TrainAlexNet', '--task-queue', QUEUE, '--workflow-id', 'train-cli', '--input', JSON.stringify(input));
  let progress: { phase: string; epoch: number } | undefined;
  for (let i = 0; i < 120 && progress?.phase !== 'training'; i++) {
    await new Promise((r) => setTimeout(r, 500));
    const out = JSON.parse(await run('workflow', 'query', '--workflow-id', 'train-cli', '--type', 'progress', '--output', 'json')) as { queryResult: [{ phase: string; epoch: number }] };
    progress = out.queryResult[0];
  }
  t.is(progress?.phase, 'training');
  await run('workflow', 'signal', '--workflow-id', 'train-cli', '--name', 'stop');
  const result = await client.workflow.getHandle('train-cli').result() as { stoppedBy: string; latestCheckpoint: string; lastValidation?: { images: number } };
  t.is(result.stoppedBy, 'signal');
  t.regex(result.latestCheckpoint, /^runs\/train-cli\/checkpoints\//);
  t.is(result.lastValidation?.images, 640, 'the stopped run was validated');
});
