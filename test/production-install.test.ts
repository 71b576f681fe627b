// A production install, for real: a copy of the built tree (dist/, the native library)
// beside node_modules from `npm ci --omit=dev` (no devDependencies), where `alexnet --help`,
// `alexnet worker --help` and a real worker run: it polls a Temporal dev server and runs
// a workflow (a TrainAlexNet with an unknown model, refused by the workflow code it bundled).
import test from 'ava';
import { execFile, spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { promisify } from 'util';

import { startTemporal, TemporalService } from '../infra/services';
import { REPO_ROOT } from '../scripts/paths';
import { tmpDir } from './helpers';

let prod: string;
let temporal: TemporalService | undefined;

test.before(() => {
  prod = tmpDir('alexnet-prod-');
  for (const f of ['package.json', 'package-lock.json']) fs.copyFileSync(path.join(REPO_ROOT, f), path.join(prod, f));
  // --ignore-scripts: our own install script builds the native library, copied below instead.
  const npm = spawnSync('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: prod, encoding: 'utf8' });
  if (npm.status !== 0) throw new Error(`npm ci --omit=dev failed: ${npm.stderr}`);
  fs.cpSync(path.join(REPO_ROOT, 'dist'), path.join(prod, 'dist'), { recursive: true });
  fs.mkdirSync(path.join(prod, 'native', 'build'), { recursive: true });
  for (const f of fs.readdirSync(path.join(REPO_ROOT, 'native', 'build')).filter((f) => /\.(node|so)$/.test(f))) {
    fs.copyFileSync(path.join(REPO_ROOT, 'native', 'build', f), path.join(prod, 'native', 'build', f));
  }
});

test.after.always(async () => {
  await temporal?.stop();
});

const cli = () => path.join(prod, 'dist', 'scripts', 'alexnet.js');

test.serial('production install: no devDependency is installed, and alexnet --help and worker --help run', (t) => {
  const pkg = JSON.parse(fs.readFileSync(path.join(prod, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> };
  // (Type packages may come with dependencies: @types/node does with protobufjs.)
  for (const dev of Object.keys(pkg.devDependencies).filter((d) => !d.startsWith('@types/'))) t.false(fs.existsSync(path.join(prod, 'node_modules', dev)), `${dev} is not installed`);
  for (const args of [['--help'], ['worker', '--help'], ['classify', '--help']]) {
    const r = spawnSync(process.execPath, [cli(), ...args], { cwd: prod, encoding: 'utf8' });
    t.is(r.status, 0, `alexnet ${args.join(' ')}: ${r.stderr}`);
    t.regex(r.stdout, /^usage: alexnet/);
  }
});

test.serial('production install: a real worker bundles the workflows, polls the server and runs a workflow', async (t) => {
  temporal = await startTemporal({ dir: tmpDir('alexnet-prod-temporal-') });
  const env = { ...process.env, TEMPORAL_ADDRESS: temporal.address };
  const worker = spawn(process.execPath, [cli(), 'worker', '--task-queue', 'prod-install'], { cwd: prod, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  worker.stdout.on('data', (d: Buffer) => (out += d.toString()));
  worker.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => worker.on('exit', resolve));
  try {
    for (let i = 0; i < 600 && !/alexnet worker: task queue prod-install/.test(out); i++) await new Promise((r) => setTimeout(r, 100));
    t.regex(out, /alexnet worker: task queue prod-install/, out);
    // The workflow code the worker bundled refuses the input: proof it ran.
    const r = await promisify(execFile)(process.execPath, [cli(), 'train', '--store', path.join(prod, 'store'), '--dataset-name', 'none',
      '--model', 'bogus', '--task-queue', 'prod-install'], { cwd: prod, env, encoding: 'utf8' }).catch((e: Error & { code: number; stderr: string }) => e);
    t.is((r as { code?: number }).code, 1);
    t.regex((r as { stderr: string }).stderr, /for model but received "bogus"/);
  } finally {
    worker.kill('SIGTERM');
  }
  t.is(await exited, 0, `the worker drains and exits 0 on SIGTERM: ${out}`);
});
