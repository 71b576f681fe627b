// The serverless property on the real dev server, with `alexnet worker --gpu` child
// processes as the GPU pool's pods (training on the CPU backend: no GPU here; the queue
// and the routing are the real ones). A TrainAlexNet with device cuda starts while no GPU
// worker runs: it waits durably, its backlog shows where KEDA's temporal scaler reads it
// (`temporal task-queue describe` on alexnet-gpu); a worker then starts (as KEDA scales
// 0 -> 1), is stopped with SIGTERM mid-epoch (a scale-down), checkpoints and exits 0, and
// the next worker resumes at that batch; the run ends bitwise equal to one that had a
// worker from the start.
import test from 'ava';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { temporal as proto } from '@temporalio/proto';

import { openStore } from '../activities/store';
import { GPU_TASK_QUEUE, TASK_QUEUE } from '../common/contract';
import type { TrainResult } from '../common/contract';
import { runKeys } from '../common/store-layout';
import type { TemporalService } from '../infra/services';
import { startTrainingFixture, tensorBytes, TrainingFixture } from './temporal-helpers';
import { spawnWorker, temporalCli, until, WorkerProcess } from './worker-process';

let fixture: TrainingFixture;
let temporal: TemporalService;
let client: Client;
const workers: WorkerProcess[] = [];

test.before(async () => {
  // Workflows and CPU activities (validation) in this process, on the real `alexnet` queue.
  // 1,600 images a split, batches of 8: an epoch of ~180 batches, long enough to stop mid-way.
  fixture = await startTrainingFixture('alexnet-scale-zero-', TASK_QUEUE, { images: 1600 });
  ({ temporal, client } = fixture);
});

test.after.always(async () => {
  workers.forEach((w) => w.kill());
  await fixture?.stop();
});

function gpuWorker(): WorkerProcess {
  const w = spawnWorker(temporal.address, ['--gpu']);
  workers.push(w);
  return w;
}

// What KEDA's temporal scaler reads: the activity backlog and the pollers of alexnet-gpu.
interface QueueState { backlog: number; pollers: string[] }
async function describeGpuQueue(): Promise<QueueState> {
  const r = await temporalCli(temporal.address, 'task-queue', 'describe', '--task-queue', GPU_TASK_QUEUE, '--task-queue-type', 'activity', '-o', 'json');
  if (r.code !== 0) throw new Error(`temporal task-queue describe: ${r.stderr}`);
  const state: QueueState = { backlog: 0, pollers: [] };
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        if (/^approximateBacklogCount$/i.test(k)) state.backlog += Number(x);
        else if (/^identity$/i.test(k) && typeof x === 'string') state.pollers.push(x);
        else walk(x);
      }
    }
  };
  walk(JSON.parse(r.stdout));
  return state;
}

const { PENDING_ACTIVITY_STATE_SCHEDULED: SCHEDULED, PENDING_ACTIVITY_STATE_STARTED: STARTED } = proto.api.enums.v1.PendingActivityState;

async function trainEpochState(handle: WorkflowHandle): Promise<{ state?: number; heartbeats: boolean }> {
  const a = (await handle.describe()).raw.pendingActivities?.find((p) => p.activityType?.name === 'trainEpoch');
  return { state: a?.state ?? undefined, heartbeats: !!a?.heartbeatDetails?.payloads?.length };
}

test('scale from zero: a cuda run waits durably with its backlog on alexnet-gpu, a worker started later finishes it; SIGTERM mid-epoch checkpoints, exits 0, and the next worker resumes there, bitwise equal to a run that had a worker from the start', async (t) => {
  const input = { store: fixture.store, datasetName: 'fashion', model: 'alexnet-32', epochs: 2, batchSize: 8, checkpointEvery: 1000, lrPolicy: { type: 'fixed', lr: 0.01 }, seed: 21, device: 'cuda' };

  // The reference: a GPU worker from the start.
  const always = gpuWorker();
  await always.ready();
  const reference = await client.workflow.execute('TrainAlexNet', { taskQueue: TASK_QUEUE, workflowId: 'scale-zero-reference', args: [input] }) as TrainResult;
  t.is(await always.terminate(), 0, always.output());

  // 1. No GPU worker runs: the run starts and its first epoch waits in the backlog.
  const handle = await client.workflow.start('TrainAlexNet', { taskQueue: TASK_QUEUE, workflowId: 'scale-zero-run', args: [input] });
  await until('trainEpoch to be scheduled', async () => (await trainEpochState(handle)).state !== undefined);
  // 2. Visible where KEDA's scaler reads it (the stats converge within seconds).
  let queue: QueueState = { backlog: 0, pollers: [] };
  await until('the alexnet-gpu backlog to show the epoch', async () => (queue = await describeGpuQueue()).backlog >= 1, 120_000, 500);
  t.true(queue.backlog >= 1, `backlog ${queue.backlog} on ${GPU_TASK_QUEUE}`);
  t.is((await handle.describe()).status.name, 'RUNNING', 'the run waits durably');
  t.is((await trainEpochState(handle)).state, SCHEDULED, 'no worker has taken the epoch');

  // 3. A worker starts, as KEDA scales the pool 0 -> 1: the time to its first poll is
  // watched beside the run, which goes on meanwhile.
  const first = gpuWorker();
  const identity = `${first.process.pid}@`;
  const firstPoll = until('the new worker to poll alexnet-gpu', async () => (await describeGpuQueue()).pollers.some((p) => p.startsWith(identity)), 120_000, 100)
    .then(() => Date.now() - first.startedAt);
  await until('the waiting epoch to start on the new worker', async () => (await trainEpochState(handle)).state === STARTED, 120_000, 50);
  const startedMs = Date.now() - first.startedAt;

  // 4. Scale-down mid-epoch: SIGTERM; the epoch checkpoints at its next batch, exit 0.
  await until('a few batches of the epoch', async () => (await trainEpochState(handle)).heartbeats, 300_000, 50);
  t.is(await first.terminate(), 0, `the worker exits 0 on SIGTERM:\n${first.output()}`);
  t.log(`cold start: process start to its first poll seen by the server ${((await firstPoll) / 1000).toFixed(1)} s (polled by \`temporal task-queue describe\` every 0.1 s), to the waiting epoch started ${(startedMs / 1000).toFixed(1)} s`);
  const store = openStore(fixture.store);
  const latest = JSON.parse((await store.get(runKeys('scale-zero-run').latest)).toString()) as { epoch: number; batch: number };
  const batchesPerEpoch = Math.floor(fixture.images.train / input.batchSize);
  t.true(latest.batch > 0 && latest.batch < batchesPerEpoch, `checkpointed mid-epoch: epoch ${latest.epoch}, batch ${latest.batch} of ${batchesPerEpoch}`);

  // The next worker resumes at that batch and the run ends as the reference did.
  const next = gpuWorker();
  const result = await handle.result() as TrainResult;
  t.is(result.epochs, 2);
  const metrics = (await store.get(runKeys('scale-zero-run').metrics)).toString().trim().split('\n').map((l) => JSON.parse(l) as { epoch: number; train?: { resumedAt: number } });
  t.is(metrics.find((m) => m.epoch === latest.epoch && m.train)?.train?.resumedAt, latest.batch, 'the next worker resumed at the shutdown checkpoint');
  t.true(tensorBytes(await store.get(result.latestCheckpoint!)).equals(tensorBytes(await store.get(reference.latestCheckpoint!))),
    'weights, momentum and RNG identical to the run that had a worker from the start');
  t.is(await next.terminate(), 0, next.output());
});
