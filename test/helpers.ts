// Shared test helpers: running the CLI, temporary folders, deterministic batches.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

export const ROOT = path.resolve(__dirname, '..', '..');
export const CLI = path.join(ROOT, 'dist', 'scripts', 'alexnet.js');

export function tmpDir(prefix = 'alexnet-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
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
