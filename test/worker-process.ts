// `alexnet worker` as a real child process, as a cluster runs it (a pod is one of these),
// and the official `temporal` CLI and `alexnet` client commands as child processes: for
// the scale-from-zero and Worker Versioning tests.
import { ChildProcess, execFile, spawn } from 'child_process';
import { promisify } from 'util';

import { binaryPath } from '../infra/services';
import { CLI } from './helpers';

export interface WorkerProcess {
  readonly process: ChildProcess;
  readonly startedAt: number;       // Date.now() when spawned
  output(): string;                 // stdout and stderr so far
  /** Resolves once the worker has said it is up (its "alexnet worker: task queue" line). */
  ready(): Promise<void>;
  /** SIGTERM, as a scale-down or rolling update sends; resolves with the exit code. */
  terminate(): Promise<number | null>;
  kill(): void;
}

export function spawnWorker(address: string, args: string[], env: NodeJS.ProcessEnv = {}): WorkerProcess {
  const startedAt = Date.now();
  const child = spawn(process.execPath, [CLI, 'worker', ...args], { env: { ...process.env, TEMPORAL_ADDRESS: address, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => void (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => void (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    process: child,
    startedAt,
    output: () => out,
    ready: async () => {
      // A loaded CI machine bundles the workflows slowly: minutes, not seconds.
      await until('the worker to start', async () => child.exitCode !== null || /alexnet worker: task queue/.test(out), 600_000, 100);
      if (child.exitCode !== null) throw new Error(`the worker exited with ${child.exitCode}:\n${out}`);
    },
    terminate: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
    kill: () => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); },
  };
}

export interface Exec { code: number; stdout: string; stderr: string }

// Asynchronous, so in-process workers keep serving while the command runs.
export async function exec(file: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Exec> {
  try {
    const { stdout, stderr } = await promisify(execFile)(file, args, { encoding: 'utf8', env, maxBuffer: 64 << 20 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof err.code === 'number' ? err.code : 1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

export const temporalCli = (address: string, ...args: string[]) => exec(binaryPath('temporal'), [...args, '--address', address]);
export const alexnetCli = (address: string, ...args: string[]) => exec(process.execPath, [CLI, ...args], { ...process.env, TEMPORAL_ADDRESS: address });

// Polls `ok` until it holds (no timing assertions: a loaded machine is only slower).
export async function until(what: string, ok: () => Promise<boolean>, timeoutMs = 300_000, everyMs = 200): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
