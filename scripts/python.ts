// Runs the PyTorch side (Debian's /usr/bin/python3 with python3-torch, and the
// safetensors package that scripts/install-python-deps.sh puts in .cache/pylib).
import { spawnSync } from 'child_process';
import * as path from 'path';

import { REPO_ROOT } from './paths';

export { REPO_ROOT };
export const PYTHON = process.env.ALEXNET_PYTHON ?? '/usr/bin/python3';

export function runPython(script: string, args: string[]): { status: number; stdout: string; stderr: string } {
  const env = { ...process.env, PYTHONPATH: path.join(REPO_ROOT, '.cache', 'pylib') };
  const r = spawnSync(PYTHON, [path.resolve(REPO_ROOT, 'scripts', script), ...args], { env, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.error) throw new Error(`cannot run ${PYTHON} ${script}: ${r.error.message} (install python3-torch: npm test does)`);
  return { status: r.status ?? 1, stdout: r.stdout, stderr: r.stderr };
}

export function lastJsonLine<T>(stdout: string): T {
  const line = stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(line) as T;
}
