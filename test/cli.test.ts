// The alexnet CLI: bench's JSON line, and errors for bad input that name the thing and
// what to do.
import test from 'ava';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

import { modelConfig } from '../native/index';
import { encodeSafetensors, tensor } from '../native/safetensors';
import { round } from '../scripts/bench/numbers';
import type { BenchNetworkResult } from '../scripts/bench/network';
import { alexnet, CLI, ROOT, tmpDir } from './helpers';

test('cli bench: --json ends with one JSON object with the documented keys; per layer, time and GFLOP/s against the measured roof; onnxruntime beside it', (t) => {
  const r = alexnet('bench', '--model', 'tiny', '--batch', '8', '--iters', '2', '--threads', '1', '--compare-onnxruntime', '--json');
  t.is(r.status, 0, r.stderr);
  const last = JSON.parse(r.stdout.trim().split('\n').pop()!) as BenchNetworkResult;
  t.like(last, { backend: 'cpu', batch: 8, threads: 1 });
  t.true(last.train_img_s > 0 && last.infer_img_s > 0 && last.batch1_ms > 0);
  t.true(last.peak.fma_gflops > 0 && last.peak.sgemm_gflops > 0, 'the roof is measured');
  const config = modelConfig('tiny');
  t.deepEqual(last.layers.map((l) => l.layer), config.layers.map((l) => ('name' in l ? l.name : l.type)), 'one row per layer, in order');
  const conv1 = last.layers[0];
  // tiny's conv1: 4 outputs of 3x3 over 3 input channels at 16x16 (pad 1): 2*4*16*16*27 FLOPs per image.
  t.is(conv1.gflop, round((2 * 4 * 16 * 16 * 27 * 8) / 1e9, 4), 'conv1 FLOPs for the batch from its shape');
  t.true(last.layers.filter((l) => l.gflop > 0).every((l) => l.forward_gflops! > 0 && l.backward_gflops! > 0 && l.forward_ms > 0 && l.infer_ms > 0));
  t.true(last.onnxruntime!.infer_img_s > 0 && (last.onnxruntime!.batch1_ms ?? 0) > 0, 'onnxruntime ran in the same run');
  t.regex(r.stderr, /roof on 1 threads: register FMAs [\d.]+ GFLOP\/s/);
});

test('cli step: missing or malformed input is reported by name', (t) => {
  const dir = tmpDir();
  const W = path.join(dir, 'W.safetensors');
  t.is(alexnet('init', '--model', 'tiny', '--out', W).status, 0);
  let r = alexnet('step', '--model', 'tiny', '--input', 'x', '--out', 'y');
  t.is(r.status, 2);
  t.regex(r.stderr, /missing --weights/);
  r = alexnet('step', '--model', 'tiny', '--weights', path.join(dir, 'nope.safetensors'), '--input', 'x', '--out', 'y');
  t.regex(r.stderr, /--weights .*nope\.safetensors: no such file/);
  const X = path.join(dir, 'X.safetensors');
  fs.writeFileSync(X, encodeSafetensors({ images: tensor('F32', [1, 3, 8, 8], new Float32Array(192)), labels: tensor('I32', [1], new Int32Array(1)) }));
  r = alexnet('step', '--model', 'tiny', '--weights', W, '--input', X, '--out', path.join(dir, 'O'));
  t.is(r.status, 2);
  t.regex(r.stderr, /needs 'images' float32 \[N,3,16,16\] \(NCHW\), found F32 \[1,3,8,8\]/);
  r = alexnet('step', '--model', 'alexnet-32', '--weights', W, '--input', X, '--out', path.join(dir, 'O'));
  t.regex(r.stderr, /has no tensor|needs F32/);
  r = alexnet('frobnicate');
  t.is(r.status, 2);
  t.regex(r.stderr, /unknown command 'frobnicate'/);
});

// A production install (npm ci --omit=dev) has no devDependencies: the CLI and the worker
// must not load any of them. Checked by refusing every devDependency at module resolution.
test('cli: --help and worker --help load no devDependency (a production install runs them)', (t) => {
  const dir = tmpDir();
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> };
  const guard = path.join(dir, 'no-dev-deps.cjs');
  fs.writeFileSync(guard, `const Module = require('module');
const dev = ${JSON.stringify(Object.keys(pkg.devDependencies))};
const resolve = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) {
  if (dev.some((d) => request === d || request.startsWith(d + '/'))) throw new Error('devDependency loaded: ' + request);
  return resolve.call(this, request, ...rest);
};
`);
  for (const args of [['--help'], ['worker', '--help'], ['train', '--help'], ['lr', '--help']]) {
    const r = spawnSync(process.execPath, ['--require', guard, CLI, ...args], { encoding: 'utf8' });
    t.is(r.status, 0, `alexnet ${args.join(' ')}: ${r.stderr}`);
    t.notRegex(r.stderr, /devDependency loaded/);
  }
});

// The top level decides the exit: help on stdout and 0; a usage error on stderr with the
// command's usage and 2; --wait and --detach on prepare at once is a usage error.
test('cli: --help exits 0 with the usage on stdout; a usage error exits 2 with it on stderr', (t) => {
  for (const args of [['--help'], [], ['prepare', '--help'], ['train', '--help'], ['eval', '--help'], ['status', '--help'], ['models', '--help'], ['import', '--help'], ['lr', '--help']]) {
    const r = alexnet(...args);
    t.is(r.status, 0, `alexnet ${args.join(' ')}: ${r.stderr}`);
    t.regex(r.stdout, /^usage: alexnet/, args.join(' '));
    t.is(r.stderr, '', args.join(' '));
  }
  for (const c of ['prepare', 'train', 'eval']) t.regex(alexnet(c, '--help').stdout, /--detach[^]*--create-bucket/, c);
  let r = alexnet('prepare', '--bogus');
  t.is(r.status, 2);
  t.regex(r.stderr, /^alexnet: Unknown option '--bogus'[^]*usage: alexnet prepare/);
  t.is(r.stdout, '');
  r = alexnet('prepare', '--dataset', 'd', '--store', 's', '--wait', '--detach');
  t.is(r.status, 2);
  t.regex(r.stderr, /--wait and --detach contradict/);
  r = alexnet('status');
  t.is(r.status, 2);
  t.regex(r.stderr, /^alexnet: usage: alexnet status <workflowId>/);
});
