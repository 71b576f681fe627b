// Clean exits (issue 13): every CLI command that follows a workflow (prepare --wait, train,
// eval, classify-batch) exits 0 after its result, with no uncaught error, even when it starts before any
// worker: its progress queries then wait on the server (and overlapping ones came back
// RESOURCE_EXHAUSTED, retried by the client on a timer that outlived connection.close():
// "Error: Channel has been shut down", exit 1, after the summary was printed).
// The real CLI as child processes against the real dev server; the worker, a real
// `alexnet worker` process, starts 4 s after the command.
import test, { ExecutionContext } from 'ava';
import { spawn } from 'child_process';

import type { TemporalService } from '../infra/services';
import { CLI } from './helpers';
import { ServicesFixture, startServices } from './temporal-helpers';

// The server and the images only: no worker (each command starts before its own).
let services: ServicesFixture;
let temporal: TemporalService;
let images: string;
let store: string;

test.before(async () => {
  services = await startServices('alexnet-cli-exit-', { images: 48 });  // 48 train + 48 test JPEGs
  ({ temporal, dataset: images, store } = services);
});

test.after.always(async () => {
  await services?.stop();
});

interface Exit { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; seconds: number }

// Starts `alexnet <args>` first, an `alexnet worker` on the same task queue 4 s later;
// resolves when the command exits (killed after 150 s), then stops the worker.
async function commandBeforeWorker(queue: string, args: string[]): Promise<Exit> {
  const env = { ...process.env, TEMPORAL_ADDRESS: temporal.address };
  const started = Date.now();
  const command = spawn(process.execPath, [CLI, ...args, '--task-queue', queue], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  command.stdout.on('data', (d: Buffer) => void (stdout += d.toString()));
  command.stderr.on('data', (d: Buffer) => void (stderr += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => command.once('exit', (code, signal) => resolve({ code, signal })));
  const killer = setTimeout(() => command.kill('SIGKILL'), 150_000);
  let worker: ReturnType<typeof spawn> | undefined;
  const workerTimer = setTimeout(() => {
    worker = spawn(process.execPath, [CLI, 'worker', '--task-queue', queue], { env, stdio: 'ignore' });
  }, 4000);
  try {
    const { code, signal } = await exited;
    return { code, signal, stdout, stderr, seconds: (Date.now() - started) / 1000 };
  } finally {
    clearTimeout(killer);
    clearTimeout(workerTimer);
    if (worker && worker.exitCode === null && worker.signalCode === null) {
      const w = worker;
      const gone = new Promise((resolve) => w.once('exit', resolve));
      w.kill('SIGTERM');
      await gone;
    }
  }
}

// Exit 0, the command's JSON summary as the last stdout line, nothing uncaught on stderr.
function assertCleanExit(t: ExecutionContext, r: Exit): Record<string, unknown> {
  const context = `exit ${r.code}${r.signal ? ` (${r.signal})` : ''} after ${r.seconds.toFixed(1)} s\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
  t.is(r.code, 0, context);
  t.notRegex(r.stderr, /Error|Channel has been shut down|uncaught|^\s+at /im, context);
  const last = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(last) as Record<string, unknown>;
  } catch {
    t.fail(`the last stdout line is not JSON: ${context}`);
    return {};
  }
}

test.serial('prepare --wait started before the worker: summary, exit 0, no uncaught error', async (t) => {
  const r = await commandBeforeWorker('exit-prepare', ['prepare', '--dataset', images, '--store', store, '--name', 'fashion',
    '--image-size', '36', '--shard-size', '48', '--parallel', '2', '--id', 'exit-prepare', '--wait']);
  const summary = assertCleanExit(t, r);
  t.like(summary, { workflowId: 'exit-prepare', images: 96, skipped: 0, shards: 3 });  // train 2, the val carved from it 1
  t.log(`prepare: ${r.seconds.toFixed(1)} s`);
});

test.serial('train started before the worker: result, exit 0, no uncaught error', async (t) => {
  const r = await commandBeforeWorker('exit-train', ['train', '--store', store, '--dataset-name', 'fashion', '--model', 'alexnet-32',
    '--image-size', '36', '--epochs', '1', '--batch-size', '16', '--lr-policy', '{"type":"fixed","lr":0.01}', '--id', 'exit-train']);
  const result = assertCleanExit(t, r);
  t.like(result, { workflowId: 'exit-train', runId: 'exit-train', epochs: 1, stoppedBy: 'epochs' });
  t.log(`train: ${r.seconds.toFixed(1)} s`);
});

test.serial('eval started before the worker: summary, exit 0, no uncaught error', async (t) => {
  const r = await commandBeforeWorker('exit-eval', ['eval', '--store', store, '--dataset-name', 'fashion', '--run', 'exit-train',
    '--split', 'test', '--crops', '1', '--batch-size', '16', '--parallel', '2', '--id', 'exit-eval']);
  const summary = assertCleanExit(t, r);
  t.like(summary, { workflowId: 'exit-eval', images: 48 });
  t.log(`eval: ${r.seconds.toFixed(1)} s`);
});

test.serial('classify-batch --wait started before the worker: summary, exit 0, no uncaught error', async (t) => {
  const r = await commandBeforeWorker('exit-classify', ['classify-batch', '--source', `${images}/test`, '--store', store, '--run', 'exit-train',
    '--shard-size', '16', '--parallel', '2', '--id', 'exit-classify', '--wait']);
  const summary = assertCleanExit(t, r);
  t.like(summary, { workflowId: 'exit-classify', images: 48, skipped: 0, parts: 3 });
  t.log(`classify-batch: ${r.seconds.toFixed(1)} s`);
});
