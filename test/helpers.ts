// Shared test helpers: running the CLI, temporary folders, deterministic batches.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { ExecutionContext } from 'ava';

import { DIST_DIR, REPO_ROOT } from '../scripts/paths';

export const ROOT = REPO_ROOT;
export const CLI = path.join(DIST_DIR, 'scripts', 'alexnet.js');

// Every temporary folder of the tests: removed when the test process ends, or when the
// test `t` ends if one is given (teardowns run last-registered first, so a service
// started on the folder after it is stopped before the folder goes).
// ALEXNET_KEEP_TEST_DIRS=1 keeps them, to look at after a failure.
const pending = new Set<string>();
const remove = (dir: string) => {
  if (process.env.ALEXNET_KEEP_TEST_DIRS === '1') return;
  try {
    fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  } catch {
    // A service killed at exit may still be writing into it: leave it to the OS.
  }
};
process.on('exit', () => pending.forEach(remove));

export function tmpDir(prefix = 'alexnet-test-', t?: ExecutionContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  if (t) t.teardown(() => remove(dir));
  else pending.add(dir);
  return dir;
}

export function runNode(script: string, args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [script, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return { status: r.status ?? 1, stdout: r.stdout, stderr: r.stderr };
}

export function alexnet(...args: string[]) {
  return runNode(CLI, args);
}

// A deterministic batch: images ~ smooth pseudo-random values, labels cycling.
export function makeBatch(n: number, inputSize: number, classes: number, salt = 0): { images: Float32Array; labels: Int32Array } {
  const images = new Float32Array(n * inputSize);
  for (let i = 0; i < images.length; i++) images[i] = Math.sin((i + 1) * 12.9898 + salt * 78.233) * 1.5;
  const labels = Int32Array.from({ length: n }, (_, i) => (i * 7 + salt) % classes);
  return { images, labels };
}
