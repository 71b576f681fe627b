// The CUDA device option from TypeScript: validation with messages naming the option, the
// environment defaults, the clear error where no GPU or driver is, what buildInfo reports,
// and (on a GPU machine) CUDA training against the CPU.
import test from 'ava';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

import { buildInfo, cudaDevices, Network, resolveDevice } from '../native/index';
import { makeBatch, ROOT } from './helpers';

const CUDA_LIBRARY = path.join(ROOT, 'native', 'build', 'libalexnet_cuda.so');

function withEnv<T>(vars: Record<string, string | undefined>, fn: () => T): T {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  const set = (vs: Record<string, string | undefined>) => {
    for (const [k, v] of Object.entries(vs)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
  set(vars);
  try {
    return fn();
  } finally {
    set(saved);
  }
}

test('resolveDevice: a device other than cpu or cuda is refused by name', (t) => {
  t.throws(() => resolveDevice({ device: 'gpu' as never }), { message: 'Expected one of "cpu", "cuda" for device but received "gpu"' });
  t.throws(() => withEnv({ ALEXNET_DEVICE: 'tpu' }, () => resolveDevice()), { message: /for ALEXNET_DEVICE but received "tpu"/ });
  t.throws(() => resolveDevice({ device: 'cuda', cuda: { devices: [-1] } }), { message: /for cuda\.devices\[0\] but received -1/ });
  t.throws(() => resolveDevice({ device: 'cuda', cuda: { devices: [0, 1, 2] } }), { message: /one or two device ids for parallel 'model'/ });
  t.throws(() => resolveDevice({ device: 'cuda', cuda: { parallel: 'pipeline' as never } }), { message: /for cuda\.parallel/ });
});

test('resolveDevice: cpu by default, ALEXNET_DEVICE and ALEXNET_CUDA_* set the defaults', (t) => {
  const none = { ALEXNET_DEVICE: undefined, ALEXNET_CUDA_DEVICES: undefined, ALEXNET_CUDA_PARALLEL: undefined, ALEXNET_CUDA_TF32: undefined, ALEXNET_CUDA_PRECISION: undefined };
  t.deepEqual(withEnv(none, () => resolveDevice()), { device: 'cpu', devices: [0], parallel: 'model', precision: 'fp32' });
  const env = { ...none, ALEXNET_DEVICE: 'cuda', ALEXNET_CUDA_DEVICES: '0,1', ALEXNET_CUDA_PARALLEL: 'data', ALEXNET_CUDA_PRECISION: 'bf16' };
  t.deepEqual(withEnv(env, () => resolveDevice()), { device: 'cuda', devices: [0, 1], parallel: 'data', precision: 'bf16' });
  t.deepEqual(withEnv(env, () => resolveDevice({ device: 'cpu', cuda: { devices: [1], parallel: 'model', precision: 'fp32' } })),
    { device: 'cpu', devices: [1], parallel: 'model', precision: 'fp32' }, 'options win over the environment');
  t.is(withEnv({ ...none, ALEXNET_CUDA_TF32: '1' }, () => resolveDevice({ device: 'cuda' })).precision, 'tf32', 'ALEXNET_CUDA_TF32=1, the older spelling');
  t.is(withEnv(none, () => resolveDevice({ device: 'cuda', cuda: { tf32: true } })).precision, 'tf32', 'cuda.tf32, the older spelling');
  t.is(withEnv({ ...none, ALEXNET_CUDA_PRECISION: 'bf16' }, () => resolveDevice()).precision, 'fp32', 'the GPU\'s settings leave the CPU in fp32');
  t.is(withEnv(none, () => resolveDevice({ precision: 'bf16' })).precision, 'bf16', 'precision asks for the CPU\'s bf16');
  t.is(withEnv({ ...none, ALEXNET_CUDA_PRECISION: 'tf32' }, () => resolveDevice({ device: 'cuda', precision: 'bf16' })).precision, 'bf16', 'precision wins over the environment');
  t.throws(() => resolveDevice({ device: 'cuda', precision: 'bf16', cuda: { precision: 'tf32' } }), { message: /for cuda\.precision but received "tf32"/ });
  t.throws(() => withEnv({ ALEXNET_CUDA_DEVICES: '0,x' }, () => resolveDevice()), { message: /for ALEXNET_CUDA_DEVICES/ });
  t.throws(() => withEnv({ ...none, ALEXNET_CUDA_PRECISION: 'fp16' }, () => resolveDevice()), { message: /for ALEXNET_CUDA_PRECISION but received "fp16"/ });
  t.throws(() => resolveDevice({ cuda: { precision: 'fp8' as never } }), { message: /Expected one of "fp32", "tf32", "bf16" for cuda\.precision but received "fp8"/ });
  t.throws(() => resolveDevice({ cuda: { precision: 'bf16', tf32: true } }), { message: /cuda\.tf32/ });
});

test('Network: the CPU is the default device and behaves as before', (t) => {
  const net = withEnv({ ALEXNET_DEVICE: undefined }, () => new Network('tiny', { seed: 1 }));
  t.is(net.device, 'cpu');
  t.is(new Network('tiny', { seed: 1, device: 'cpu' }).device, 'cpu');
});

test('buildInfo: reports CUDA compiled in exactly when libalexnet_cuda.so was built', (t) => {
  const info = buildInfo();
  t.is(info.cuda, fs.existsSync(CUDA_LIBRARY));
  t.is(info.cudaLibrary, info.cuda ? CUDA_LIBRARY : null);
  const devices = cudaDevices();
  t.is(devices.built, info.cuda);
  t.is(devices.loaded, info.cuda, 'the backend loads wherever it was built (no GPU needed to load it)');
  t.true(devices.count >= 0);
  t.truthy(devices.info);
});

// Each of the next two runs where it can (the other one is reported as skipped): without
// a GPU the clear error, on a GPU CUDA against the CPU.
const gpus = cudaDevices().count;
const withoutGpu = gpus === 0 ? test : test.skip;
const onGpu = gpus > 0 ? test : test.skip;

withoutGpu("Network: device 'cuda' without a GPU fails with the clear error", (t) => {
  const err = t.throws(() => new Network('tiny', { device: 'cuda' }));
  if (buildInfo().cuda) {
    t.regex(err!.message, /^CUDA requested but no CUDA device is available: .+; run on a GPU machine or unset ALEXNET_DEVICE$/);
  } else {
    t.regex(err!.message, /has no CUDA backend/);
  }
});

onGpu('Network: on a GPU, CUDA steps track the CPU (tiny, model parallel and data parallel)', async (t) => {
  const { images, labels } = makeBatch(6, new Network('tiny').inputSize, 5);
  for (const parallel of ['model', 'data'] as const) {
    const cpu = new Network('tiny', { seed: 3 });
    const gpu = new Network('tiny', { seed: 3, device: 'cuda', cuda: { parallel, devices: parallel === 'data' ? [0, 0] : [0] } });
    t.regex(gpu.device, /^cuda:0/);
    for (let s = 0; s < 3; s++) {
      const [a, b] = [await cpu.step(images, labels, { lr: 0.01 }), await gpu.step(images, labels, { lr: 0.01 })];
      t.true(Math.abs(a.loss - b.loss) <= 1e-4 * Math.abs(a.loss), `${parallel} step ${s}: ${b.loss} vs ${a.loss}`);
    }
    const [wc, wg] = [cpu.weight('conv1.weight'), gpu.weight('conv1.weight')];
    t.true(wc.every((v, i) => Math.abs(v - wg[i]) <= 1e-5), 'conv1 weights agree after three steps');
    t.deepEqual(gpu.rngState, cpu.rngState);
  }
});

test('native test_cuda: skips with exit 77 without a GPU, passes with one', (t) => {
  const exe = path.join(ROOT, 'native', 'build', 'test_cuda');
  if (!fs.existsSync(exe)) {
    t.false(buildInfo().cuda, 'test_cuda is built wherever the CUDA backend is');
    return;
  }
  const r = spawnSync(exe, { encoding: 'utf8', timeout: 300_000 });
  if (cudaDevices().count === 0) {
    t.is(r.status, 77, `expected the skip code:\n${r.stdout}\n${r.stderr}`);
    t.regex(r.stdout, /^SKIP test_cuda: no CUDA device/);
  } else {
    t.is(r.status, 0, `${r.stdout}\n${r.stderr}`);
  }
});
