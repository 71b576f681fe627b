// The CUDA device option from TypeScript: validation with messages naming the option, the
// environment defaults, the clear error where no GPU or driver is (from Network and through
// `alexnet classify --device cuda`), what buildInfo reports, and (on a GPU machine) CUDA
// training against the CPU.
import test from 'ava';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

import { openStore } from '../activities/store';
import { datasetKeys, runKeys } from '../common/store-layout';
import { buildInfo, cudaDevices, Network, resolveDevice } from '../native/index';
import { encodeSafetensors, tensor } from '../native/safetensors';
import { encodeState } from '../native/state';
import { CLI, makeBatch, ROOT, tmpDir } from './helpers';

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

// Each of the next three runs where it can (the others are reported as skipped): without a
// GPU the clear error (from Network, and through the CLI), on a GPU CUDA against the CPU.
const gpus = cudaDevices().count;
const withoutGpu = gpus === 0 ? test : test.skip;
const onGpu = gpus > 0 ? test : test.skip;

withoutGpu("Network: device 'cuda' without a GPU fails with the clear error", (t) => {
  const err = t.throws(() => new Network('tiny', { device: 'cuda' }));
  if (buildInfo().cuda) {
    t.regex(err!.message, /^CUDA requested but no CUDA device is available: .+; run on a GPU machine, or ask for the CPU \(--device cpu, device: 'cpu', or ALEXNET_DEVICE unset\)$/);
  } else {
    t.regex(err!.message, /has no CUDA backend/);
  }
});

// The CLI's routing of --device cuda without a GPU: a store holding only what loading a
// model reads (a tiny network's checkpoint, a dataset manifest and mean image; written
// here, no training), then `alexnet classify --device cuda` as a child process. The model
// load must stop at the CUDA network with the clear error, exit 1, no crash, no output.
withoutGpu("alexnet classify --device cuda without a GPU: the clear error, exit 1, no crash", async (t) => {
  const dir = tmpDir('alexnet-cuda-route-', t);
  const store = openStore(dir);
  const net = new Network('tiny', { seed: 1, device: 'cpu' });
  const { classes } = net.config;
  const side = net.config.input.height;
  const dataset = 'cuda-route';
  const checkpoint = runKeys('cuda-route-run').checkpoint(0, 0, 0);
  await store.put(checkpoint, encodeState(net));
  await store.put(datasetKeys(dataset).manifest, JSON.stringify({
    name: dataset, source: dir, imageSize: side, seed: 1, shardSize: 1, classes, splits: {}, statsKey: '', createdAt: new Date().toISOString(), resizeKernel: 'linear',
  }));
  await store.put(datasetKeys(dataset).meanImage, encodeSafetensors({ mean: tensor('F32', [side, side, 3], new Float32Array(side * side * 3)) }));
  const image = path.join(dir, 'never-read.jpg');  // the model fails to load before any image is read
  const r = spawnSync(process.execPath, [CLI, 'classify', image, '--store', dir, '--checkpoint', checkpoint, '--dataset-name', dataset, '--device', 'cuda'],
    { encoding: 'utf8', timeout: 20_000 });
  const detail = `exit ${r.status}, signal ${r.signal}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
  t.is(r.signal, null, `no crash or timeout: ${detail}`);
  t.is(r.status, 1, `exit 1 (an error, not a usage error): ${detail}`);
  t.is(r.stdout, '', 'nothing classified');
  if (buildInfo().cuda) {
    t.regex(r.stderr, /^alexnet: \w*Error: CUDA requested but no CUDA device is available: .+; run on a GPU machine/m, detail);
  } else {
    t.regex(r.stderr, /has no CUDA backend/, detail);
  }
  t.notRegex(r.stderr, /terminate called|Aborted|Segmentation|core dumped|\n\s+at /, 'no native abort and no stack trace');
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
