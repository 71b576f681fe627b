// Graceful worker shutdown: SIGTERM to a training worker process makes the running epoch
// checkpoint at its next batch and hand over; the worker exits promptly, and a new
// worker resumes at exactly that batch, ending bitwise identical to an uninterrupted run.
import test from 'ava';
import { ChildProcess, spawn } from 'child_process';
import type { Client } from '@temporalio/client';

import { openStore } from '../activities/store';
import { runKeys } from '../common/store-layout';
import type { TemporalService } from '../infra/services';
import { CLI } from './helpers';
import { startTrainingFixture, tensorBytes, TrainingFixture } from './temporal-helpers';

let fixture: TrainingFixture;
let temporal: TemporalService;
let client: Client;
let store: string;

test.before(async () => {
  fixture = await startTrainingFixture('alexnet-shutdown-', 'shutdown-ref');
  ({ temporal, client, store } = fixture);
});

test.after.always(async () => {
  await fixture?.stop();
});

function exited(p: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => (p.exitCode !== null ? resolve(p.exitCode) : p.once('exit', (code) => resolve(code))));
}

test('worker SIGTERM: the epoch checkpoints at its next batch, the worker exits, a new worker resumes there bitwise', async (t) => {
  // checkpointEvery larger than an epoch: the only mid-epoch checkpoint is the shutdown's.
  const input = { store, datasetName: 'fashion', model: 'alexnet-32', epochs: 2, batchSize: 16, checkpointEvery: 1000, lrPolicy: { type: 'fixed', lr: 0.01 }, seed: 11 };
  const reference = await client.workflow.execute('TrainAlexNet', { taskQueue: 'shutdown-ref', workflowId: 'shutdown-reference', args: [{ ...input, runId: 'shutdown-reference' }] }) as { latestCheckpoint: string };

  const queue = 'shutdown-worker';
  const env = { ...process.env, TEMPORAL_ADDRESS: temporal.address };
  const spawnWorker = () => spawn(process.execPath, [CLI, 'worker', '--task-queue', queue], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let first = spawnWorker();
  let output = '';
  first.stdout!.on('data', (d: Buffer) => void (output += d.toString()));
  const handle = await client.workflow.start('TrainAlexNet', { taskQueue: queue, workflowId: 'shutdown-run', args: [input] });
  // Wait until the first epoch is a few batches in (its heartbeats carry the batch).
  for (let i = 0; i < 600; i++) {
    const d = await handle.describe();
    const a = d.raw.pendingActivities?.find((p) => p.activityType?.name === 'trainEpoch');
    if (a?.heartbeatDetails?.payloads?.length) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const sent = Date.now();
  first.kill('SIGTERM');
  const code = await exited(first);
  const seconds = (Date.now() - sent) / 1000;
  t.is(code, 0, `the worker exited cleanly:\n${output}`);
  t.true(seconds < 20, `the worker stopped ${seconds.toFixed(1)} s after SIGTERM (grace time 30 s: it did not wait it out)`);
  const latest = JSON.parse((await openStore(store).get(runKeys('shutdown-run').latest)).toString()) as { epoch: number; batch: number };
  t.is(latest.epoch, 0);
  t.true(latest.batch > 0 && latest.batch < 40, `checkpointed mid-epoch at batch ${latest.batch}`);

  first = spawnWorker();
  try {
    const result = await handle.result() as { latestCheckpoint: string; epochs: number };
    t.is(result.epochs, 2);
    const metrics = (await openStore(store).get(runKeys('shutdown-run').metrics)).toString().trim().split('\n').map((l) => JSON.parse(l) as { epoch: number; train: { resumedAt: number } });
    t.is(metrics[0].train.resumedAt, latest.batch, 'the next attempt resumed at the shutdown checkpoint');
    const s = openStore(store);
    t.true(tensorBytes(await s.get(result.latestCheckpoint)).equals(tensorBytes(await s.get(reference.latestCheckpoint))),
      'weights, momentum and RNG identical to the uninterrupted run');
  } finally {
    first.kill('SIGKILL');
  }
});
