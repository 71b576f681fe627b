// Worker Versioning on the real dev server (Server 1.29.1 has Worker Deployments): two
// builds of `alexnet worker --deployment D --build-id B` as child processes. A run started
// on build 1 stays on build 1's worker after build 2 is made current (`temporal worker
// deployment set-current-version`), new runs go to build 2, and `alexnet status` says
// which build each run is on.
import test from 'ava';
import type { Client, WorkflowHandle } from '@temporalio/client';

import type { TemporalService } from '../infra/services';
import type { TrainResult } from '../common/contract';
import { startTrainingFixture, TrainingFixture } from './temporal-helpers';
import { alexnetCli, spawnWorker, temporalCli, until, WorkerProcess } from './worker-process';

const DEPLOYMENT = 'alexnet-test';
const QUEUE = 'versioned';
let fixture: TrainingFixture;
let temporal: TemporalService;
let client: Client;
const workers: WorkerProcess[] = [];

test.before(async () => {
  // The in-process worker (unversioned, its own queue) only prepares the data set.
  fixture = await startTrainingFixture('alexnet-versioning-', 'versioning-prepare');
  ({ temporal, client } = fixture);
});

test.after.always(async () => {
  workers.forEach((w) => w.kill());
  await fixture?.stop();
});

async function startBuild(buildId: string): Promise<WorkerProcess> {
  const w = spawnWorker(temporal.address, ['--task-queue', QUEUE, '--deployment', DEPLOYMENT, '--build-id', buildId]);
  workers.push(w);
  await w.ready();
  return w;
}

// The version exists once its worker has polled; until then the server refuses it.
async function setCurrent(buildId: string): Promise<void> {
  let last = '';
  await until(`build ${buildId} to become current`, async () => {
    const r = await temporalCli(temporal.address, 'worker', 'deployment', 'set-current-version', '--deployment-name', DEPLOYMENT, '--build-id', buildId, '--yes');
    last = r.stderr + r.stdout;
    return r.code === 0;
  }, 120_000, 500).catch((e: Error) => { throw new Error(`${e.message}: ${last}`); });
}

async function statusWorker(workflowId: string): Promise<{ deployment: string; buildId: string; behavior: string } | null> {
  const r = await alexnetCli(temporal.address, 'status', workflowId);
  if (r.code !== 0) throw new Error(`alexnet status ${workflowId}: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { worker: { deployment: string; buildId: string; behavior: string } | null }).worker;
}

// The pids of the worker processes that ran a run's activities (the SDK's identity is pid@host).
async function activityWorkerPids(handle: WorkflowHandle): Promise<Set<number>> {
  const pids = new Set<number>();
  for (const e of (await handle.fetchHistory()).events ?? []) {
    const identity = e.activityTaskStartedEventAttributes?.identity;
    if (identity) pids.add(Number(identity.split('@')[0]));
  }
  return pids;
}

function trainInput(epochs: number) {
  return { store: fixture.store, datasetName: 'fashion', model: 'alexnet-32', epochs, batchSize: 16, checkpointEvery: 1000, lrPolicy: { type: 'fixed', lr: 0.01 }, seed: 5 };
}

test('worker versioning: a run pinned to build 1 stays on build 1 after build 2 is made current; new runs go to build 2; alexnet status shows the build', async (t) => {
  const build1 = await startBuild('build-1');
  await setCurrent('build-1');
  const old = await client.workflow.start('TrainAlexNet', { taskQueue: QUEUE, workflowId: 'versioning-old', args: [trainInput(2)] });
  // Hold it mid-run (a pause lands at a checkpoint) while the upgrade happens.
  const paused = await alexnetCli(temporal.address, 'pause', 'versioning-old');
  t.is(paused.code, 0, paused.stderr);
  t.deepEqual(await statusWorker('versioning-old'), { deployment: DEPLOYMENT, buildId: 'build-1', behavior: 'PINNED' });

  const build2 = await startBuild('build-2');
  await setCurrent('build-2');
  const fresh = await client.workflow.start('TrainAlexNet', { taskQueue: QUEUE, workflowId: 'versioning-new', args: [trainInput(1)] });
  const freshResult = await fresh.result() as TrainResult;
  t.is(freshResult.epochs, 1);
  t.deepEqual(await statusWorker('versioning-new'), { deployment: DEPLOYMENT, buildId: 'build-2', behavior: 'PINNED' }, 'a new run goes to the current build');
  t.deepEqual([...await activityWorkerPids(fresh)], [build2.process.pid], 'only build 2\'s worker ran the new run');

  const resumed = await alexnetCli(temporal.address, 'resume', 'versioning-old');
  t.is(resumed.code, 0, resumed.stderr);
  const oldResult = await old.result() as TrainResult;
  t.is(oldResult.epochs, 2);
  t.deepEqual(await statusWorker('versioning-old'), { deployment: DEPLOYMENT, buildId: 'build-1', behavior: 'PINNED' }, 'the old run stayed pinned to build 1');
  t.deepEqual([...await activityWorkerPids(old)], [build1.process.pid], 'only build 1\'s worker ran the old run, before and after build 2 became current');
  const history = (await old.fetchHistory()).events ?? [];
  const builds = new Set(history.flatMap((e) => {
    const a = e.workflowTaskCompletedEventAttributes;
    const id = a?.deploymentVersion?.buildId ?? a?.workerDeploymentVersion;
    return id ? [id] : [];
  }));
  t.log(`the old run's workflow tasks completed on builds: ${[...builds].join(', ')}`);
  t.false([...builds].some((b) => b.includes('build-2')), 'no workflow task of the old run ran on build 2');

  for (const w of [build1, build2]) t.is(await w.terminate(), 0, w.output());
});
