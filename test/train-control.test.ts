// TrainAlexNet's commands as Temporal Updates (setLearningRate, pause, resume, stop), through
// the official `temporal` CLI, the client and `alexnet lr|pause|resume|stop`, against the dev
// server with an in-process worker: validators refuse bad LRs with the reason and nothing
// changes (nothing enters the history); pause answers once the run is paused at a
// checkpoint; the signals of the same names keep working.
import test from 'ava';
import { execFile } from 'child_process';
import { promisify } from 'util';
import type { Client, WorkflowHandle } from '@temporalio/client';

import { openStore } from '../activities/store';
import { runKeys } from '../common/store-layout';
import { binaryPath, TemporalService } from '../infra/services';
import type { TrainProgress } from '../common/contract';
import { CLI } from './helpers';
import { startTrainingFixture, TrainingFixture } from './temporal-helpers';

const QUEUE = 'train-control-test';
let fixture: TrainingFixture;
let temporal: TemporalService;
let client: Client;
let store: string;

test.before(async () => {
  fixture = await startTrainingFixture('alexnet-control-', QUEUE);
  ({ temporal, client, store } = fixture);
});

test.after.always(async () => {
  await fixture?.stop();
});

// Asynchronous child processes: the worker runs in this process and must keep serving.
async function exec(file: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(file, args, { encoding: 'utf8', env });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof err.code === 'number' ? err.code : 1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}
const temporalCli = (...args: string[]) => exec(binaryPath('temporal'), [...args, '--address', temporal.address]);
const alexnet = (...args: string[]) => exec(process.execPath, [CLI, ...args], { ...process.env, TEMPORAL_ADDRESS: temporal.address });

async function until<T>(what: string, get: () => Promise<T>, ok: (v: T) => boolean, everyMs = 100, tries = 300): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const v = await get();
    if (ok(v)) return v;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out waiting for ${what}`);
}

// Many epochs of 80 batches of 8: the tests end each run with stop.
async function startRun(workflowId: string): Promise<WorkflowHandle> {
  const handle = await client.workflow.start('TrainAlexNet', {
    taskQueue: QUEUE, workflowId,
    args: [{ store, datasetName: 'fashion', model: 'alexnet-32', epochs: 1000, batchSize: 8, checkpointEvery: 4, lrPolicy: { type: 'fixed', lr: 0.01 } }],
  });
  await until('training', () => progress(handle), (p) => p.phase === 'training');
  return handle;
}
const progress = (handle: WorkflowHandle) => handle.query<TrainProgress>('progress');
const latest = async (runId: string) => (await openStore(store).get(runKeys(runId).latest)).toString();

test.serial('updates: setLearningRate through the official CLI answers the LR, refuses 0 and 100 with the reason; pause/resume/stop answer phases; the signals still work', async (t) => {
  const id = 'control-updates';
  const handle = await startRun(id);

  const ok = await temporalCli('workflow', 'update', 'execute', '--workflow-id', id, '--name', 'setLearningRate', '--input', '0.001', '--output', 'json');
  t.is(ok.code, 0, ok.stderr);
  t.log(`temporal workflow update execute --input 0.001: ${ok.stdout.trim().replace(/\s+/g, ' ')}`);
  const answer = (JSON.parse(ok.stdout) as { result: { lr: number; policy: { type: string; lr: number; history: { lr: number; reason: string }[] } } }).result;
  t.is(answer.lr, 0.001);
  t.is(answer.policy.type, 'fixed');
  t.deepEqual(answer.policy.history.map((h) => [h.lr, h.reason]), [[0.01, 'initial learning rate'], [0.001, 'setLearningRate update']]);
  for (const bad of ['0', '100']) {
    const refused = await temporalCli('workflow', 'update', 'execute', '--workflow-id', id, '--name', 'setLearningRate', '--input', bad);
    t.not(refused.code, 0, `--input ${bad} refused`);
    t.regex(refused.stderr, new RegExp(`greater than 0 and at most 10 for lr but received ${bad}`), `the reason for ${bad}: ${refused.stderr}`);
    if (bad === '100') t.log(`--input 100: exit ${refused.code}, ${refused.stderr.trim()}`);
  }
  let p = await progress(handle);
  t.is(p.lr, 0.001, 'the refused values changed nothing');
  t.deepEqual(p.lrHistory.map((h) => h.lr), [0.01, 0.001]);

  // The signal of the same name: a bad value ignored, a good one applied.
  await handle.signal('setLearningRate', -5);
  await handle.signal('setLearningRate', 0.002);
  p = await until('the signalled LR', () => progress(handle), (q) => q.lr === 0.002);
  t.deepEqual(p.lrHistory.map((h) => h.lr), [0.01, 0.001, 0.002]);

  // pause answers once the epoch has checkpointed and stopped.
  const paused = await handle.executeUpdate<{ phase: string }, []>('pause');
  t.deepEqual(paused, { phase: 'paused' });
  t.is((await progress(handle)).phase, 'paused');
  const held = await latest(id);
  await new Promise((r) => setTimeout(r, 1500));
  t.is(await latest(id), held, 'no training while paused');

  t.deepEqual(await handle.executeUpdate<{ phase: string }, []>('resume'), { phase: 'training' });
  await until('a checkpoint past the pause', () => latest(id), (l) => l !== held);

  t.deepEqual(await handle.executeUpdate<{ phase: string }, []>('stop'), { phase: 'stopping' });
  const result = await handle.result() as { stoppedBy: string; lrHistory: { lr: number }[] };
  t.is(result.stoppedBy, 'signal');
  t.deepEqual(result.lrHistory.map((h) => h.lr), [0.01, 0.001, 0.002]);

  // Accepted updates are in the history; the refused ones are not.
  const history = await handle.fetchHistory();
  const accepted = (history.events ?? []).filter((e) => e.workflowExecutionUpdateAcceptedEventAttributes).map((e) => e.workflowExecutionUpdateAcceptedEventAttributes!.acceptedRequest?.input?.name);
  t.deepEqual(accepted, ['setLearningRate', 'pause', 'resume', 'stop']);
});

test.serial('alexnet lr|pause|resume|stop print the answers as JSON; a refused lr exits 1 with the reason', async (t) => {
  const id = 'control-cli';
  const handle = await startRun(id);
  const json = (r: { code: number; stdout: string; stderr: string }) => {
    t.is(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    t.is(lines.length, 1, 'one JSON line');
    return JSON.parse(lines[0]) as Record<string, unknown>;
  };

  const set = json(await alexnet('lr', id, '0.003'));
  t.is(set.lr, 0.003);
  t.is((set.policy as { lr: number }).lr, 0.003);
  const refused = await alexnet('lr', id, '-1');
  t.is(refused.code, 1);
  t.is(refused.stdout, '');
  t.log(`alexnet lr ${id} -1: exit 1, ${refused.stderr.trim()}`);
  t.regex(refused.stderr, /control-cli refused lr -1: Expected number greater than 0 and at most 10 for lr but received -1/);
  t.is((await progress(handle)).lr, 0.003, 'the refused LR changed nothing');
  t.is((await alexnet('lr', id, 'fast')).code, 2, 'not a number: a usage error');

  t.deepEqual(json(await alexnet('pause', id)), { phase: 'paused' });
  t.deepEqual(json(await alexnet('resume', id)), { phase: 'training' });
  t.deepEqual(json(await alexnet('stop', id)), { phase: 'stopping' });
  const result = await handle.result() as { stoppedBy: string; lrHistory: { lr: number }[] };
  t.is(result.stoppedBy, 'signal');
  t.deepEqual(result.lrHistory.map((h) => h.lr), [0.01, 0.003]);

  const gone = await alexnet('pause', id);
  t.is(gone.code, 1, 'a finished run refuses updates');
  t.log(`pause after the end: ${gone.stderr.trim()}`);
});

test.serial('pause arriving in the last epoch\'s validation answers done as the run ends', async (t) => {
  const handle = await client.workflow.start('TrainAlexNet', {
    taskQueue: QUEUE, workflowId: 'control-last',
    args: [{ store, datasetName: 'fashion', model: 'alexnet-32', epochs: 1, batchSize: 8, checkpointEvery: 4, lrPolicy: { type: 'fixed', lr: 0.01 } }],
  });
  await until('the validation', () => progress(handle), (p) => p.phase === 'validating' || p.phase === 'done', 10, 3000);
  const t0 = Date.now();
  const answer = await handle.executeUpdate<{ phase: string }, []>('pause');
  t.log(`answered ${JSON.stringify(answer)} after ${Date.now() - t0} ms`);
  t.deepEqual(answer, { phase: 'done' });
  t.is((await handle.result() as { stoppedBy: string }).stoppedBy, 'epochs');
});
