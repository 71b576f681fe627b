// The TypeScript API over the addon: async work off the event loop, zero-copy views,
// argument errors that name the argument, NaN refusal, the paper's SGD rule, and the
// OpenBLAS kernels the loader makes sure of.
import test from 'ava';
import * as fs from 'fs';

import { openblasCoreType } from '../native/binding';
import { buildInfo, modelConfig, Network, NonFiniteLossError } from '../native/index';
import { makeBatch } from './helpers';

test('Network: a long step runs off the event loop while a timer keeps firing', async (t) => {
  const net = new Network('alexnet-64', { seed: 1 });
  const { images, labels } = makeBatch(64, net.inputSize, 10);
  let ticks = 0;
  const timer = setInterval(() => ticks++, 5);
  const t0 = Date.now();
  await net.step(images, labels, { lr: 0.01 });
  await net.step(images, labels, { lr: 0.01 });
  const elapsed = Date.now() - t0;
  clearInterval(timer);
  t.true(elapsed > 100, `the steps took long enough to matter (${elapsed} ms)`);
  t.true(ticks >= elapsed / 5 / 4, `the timer fired ${ticks} times in ${elapsed} ms`);
});

test('Network: weight views are zero-copy over native memory', async (t) => {
  const net = new Network('tiny', { seed: 2 });
  const { images } = makeBatch(2, net.inputSize, 5);
  const before = await net.predict(images);
  const fc8 = net.weight('fc8.bias');
  fc8[0] += 5;  // a write through the view changes what the network computes
  const after = await net.predict(images);
  t.true(Math.abs(after[0] - before[0] - 5) < 1e-5);
  t.is(net.weight('fc8.bias')[0], fc8[0], 'a second view sees the same memory');
});

test('Network: concurrent calls are queued, not refused', async (t) => {
  const net = new Network('tiny', { seed: 2 });
  const { images, labels } = makeBatch(4, net.inputSize, 5);
  const results = await Promise.all([net.step(images, labels, { lr: 0.01 }), net.predict(images), net.step(images, labels, { lr: 0.01 })]);
  t.is(results.length, 3);
  t.is(net.rngState.counter, 2n);
});

test('Network: bad arguments fail with messages that name them', async (t) => {
  const net = new Network('tiny');
  const { images, labels } = makeBatch(2, net.inputSize, 5);
  t.throws(() => net.forward(new Float64Array(net.inputSize) as unknown as Float32Array), { message: /Expected Float32Array for images but received Float64Array/ });
  t.throws(() => net.forward(new Float32Array(net.inputSize + 1)), { message: /N\*3\*16\*16 = N\*768 values \(layout N,C,H,W\) for images but received Float32Array\(769\)/ });
  t.throws(() => net.step(images, new Int32Array(3), { lr: 0.01 }), { message: /Expected Int32Array of length 2 \(one per image\) for labels but received Int32Array\(3\)/ });
  t.throws(() => net.step(images, Int32Array.of(0, 9), { lr: 0.01 }), { message: /labels\[1\] is 9/ });
  t.throws(() => net.step(images, labels, { lr: -1 }), { message: /Expected number between 0 and 1000 for lr but received -1/ });
  t.throws(() => net.weight('fc9.weight'), { message: /Expected a parameter name \(conv1\.weight, .*\) for name but received "fc9\.weight"/ });
  t.throws(() => new Network({ ...modelConfig('tiny'), layers: [{ type: 'softmax2' } as never] }), { message: /unknown layer type 'softmax2'/ });
  t.throws(() => new Network('resnet'), { message: /for model but received "resnet"/ });
  const bad = modelConfig('alexnet');
  (bad.layers[4] as { groups: number }).groups = 3;
  t.throws(() => new Network(bad), { message: /conv2.*groups=3/ });
  t.throws(() => new Network('tiny', { seed: -1 }), { message: /Expected non-negative integer below 2\^64 for seed but received -1/ });
});

test('Network: a NaN loss rejects with NonFiniteLossError and changes no weight', async (t) => {
  const net = new Network('tiny', { seed: 4 });
  const { images, labels } = makeBatch(2, net.inputSize, 5);
  net.weight('fc8.bias')[1] = NaN;
  const conv1 = net.weight('conv1.weight').slice();
  const err = await t.throwsAsync(net.step(images, labels, { lr: 0.01 }), { instanceOf: NonFiniteLossError });
  t.regex(err!.message, /loss is NaN/);
  t.regex(err!.stack ?? '', /native-api\.test/, 'the error carries the stack of the call');
  t.deepEqual(net.weight('conv1.weight'), conv1);
  t.is(net.rngState.counter, 0n);
});

test('sgd: the update follows the paper across a learning-rate drop (velocity not rescaled)', async (t) => {
  const net = new Network('tiny', { seed: 5 });
  const { images, labels } = makeBatch(4, net.inputSize, 5);
  const name = 'fc7.weight';
  const w = Float64Array.from(net.weight(name));
  const v = new Float64Array(w.length);
  // torch.optim.SGD's form: buf <- 0.9 buf + (g + wd w); w <- w - lr buf. Equal for a
  // constant LR; after a drop it shrinks the carried velocity at once.
  const wTorch = Float64Array.from(w);
  const buf = new Float64Array(w.length);
  for (const lr of [0.01, 0.001]) {
    await net.forward(images, labels, { train: true });
    await net.backward();
    const g = net.gradient(name);
    for (let i = 0; i < w.length; i++) {
      v[i] = 0.9 * v[i] - 0.0005 * lr * w[i] - lr * g[i];
      w[i] += v[i];
      buf[i] = 0.9 * buf[i] + g[i] + 0.0005 * wTorch[i];
      wTorch[i] -= lr * buf[i];
    }
    await net.update({ lr });
  }
  const got = net.weight(name);
  const mom = net.momentum(name);
  let err = 0;
  let vErr = 0;
  let torchGap = 0;
  for (let i = 0; i < w.length; i++) {
    err = Math.max(err, Math.abs(got[i] - w[i]));
    vErr = Math.max(vErr, Math.abs(mom[i] - v[i]));
    torchGap = Math.max(torchGap, Math.abs(got[i] - wTorch[i]));
  }
  t.true(err < 1e-6 && vErr < 1e-7, `weights differ from the paper's rule by ${err}, velocities by ${vErr}`);
  t.true(torchGap > 100 * err, `the result is not torch.optim.SGD's (gap ${torchGap} vs error ${err})`);
});

// bf16 GEMM inputs (opt-in): on a CPU with AVX512_BF16 the logits and the training losses
// move by bf16's rounding and no more, and weights stay fp32; elsewhere the fp32 GEMMs run
// and the device string says so. TF32 is refused on the CPU by name.
test('Network: precision bf16 on the CPU stays within bf16 rounding of fp32, in predictions and in training', async (t) => {
  const fp32 = new Network('alexnet-32', { seed: 5 });
  const bf16 = new Network('alexnet-32', { seed: 5, precision: 'bf16' });
  t.is(fp32.device, 'cpu');
  t.regex(bf16.device, /^cpu \(bf16 (GEMMs, AVX512_BF16|asked, fp32 GEMMs: no AVX512_BF16)\)$/);
  const hardware = /AVX512_BF16\)$/.test(bf16.device);
  const { images, labels } = makeBatch(32, fp32.inputSize, 10, 3);
  const [a, b] = [await fp32.predict(images), await bf16.predict(images)];
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) { num += (a[i] - b[i]) ** 2; den += a[i] ** 2; }
  const rel = Math.sqrt(num / den);
  if (hardware) t.true(rel > 0 && rel < 2e-2, `logits within bf16 rounding of fp32 (relative ${rel.toExponential(2)})`);
  else t.is(rel, 0, 'without AVX512_BF16 the fp32 GEMMs run');
  // Eight training steps each: bf16's losses track fp32's, and its weights moved otherwise.
  let worstLoss = 0;
  for (let i = 0; i < 8; i++) {
    const [lf, lb] = [(await fp32.step(images, labels, { lr: 0.05 })).loss, (await bf16.step(images, labels, { lr: 0.05 })).loss];
    worstLoss = Math.max(worstLoss, Math.abs(lf - lb) / lf);
  }
  t.true(worstLoss < 1e-2, `bf16's training losses within 1% of fp32's (worst ${worstLoss.toExponential(2)})`);
  const [wf, wb] = [fp32.weight('conv2.weight'), bf16.weight('conv2.weight')];
  t.is(wf.some((v, i) => v !== wb[i]), hardware, hardware ? 'bf16 GEMMs changed the weights\' path' : 'fp32 GEMMs: the same weights');
  t.true(bf16.weight('fc8.weight') instanceof Float32Array, 'weights stay fp32');
  t.throws(() => new Network('tiny', { precision: 'tf32' }), { message: /for precision on the CPU .* but received "tf32"/ });
  t.throws(() => new Network('tiny', { precision: 'fp16' as never }), { message: /Expected one of "fp32", "tf32", "bf16" for precision but received "fp16"/ });
});

test('OpenBLAS core: SkylakeX asked for on an Intel CPU with AVX-512 (Debian 0.3.21 runs its generic code on Sapphire Rapids), nothing elsewhere', (t) => {
  const cpu = (vendor: string, flags: string) => `processor\t: 0\nvendor_id\t: ${vendor}\nflags\t\t: fpu sse sse2 ${flags}\n`;
  t.is(openblasCoreType(cpu('GenuineIntel', 'avx2 fma avx512f avx512dq avx512bw avx512vl amx_tile')), 'SkylakeX');
  t.is(openblasCoreType(cpu('GenuineIntel', 'avx2 fma')), undefined, 'no AVX-512: OpenBLAS decides');
  t.is(openblasCoreType(cpu('GenuineIntel', 'avx2 fma avx512f')), undefined, 'AVX-512F alone is not what SkylakeX kernels use');
  t.is(openblasCoreType(cpu('AuthenticAMD', 'avx2 fma avx512f avx512dq avx512bw avx512vl')), undefined, 'AMD: OpenBLAS decides');
});

test('OpenBLAS core: on this machine the SGEMM runs vector kernels wherever the CPU has AVX2, not the generic SSE3 code', (t) => {
  const { blas, blasCore } = buildInfo();
  t.log(`BLAS ${blas}, core ${blasCore}, OPENBLAS_CORETYPE ${process.env.OPENBLAS_CORETYPE ?? '(unset)'}`);
  const avx2 = fs.existsSync('/proc/cpuinfo') && /^flags\s*:.*\bavx2\b/m.test(fs.readFileSync('/proc/cpuinfo', 'utf8'));
  if (blas !== 'openblas' || !avx2) {
    t.is(typeof blasCore, 'string');
    return;
  }
  t.false(['Prescott', 'Core2', 'Penryn', 'Dunnington', 'Nehalem', 'Atom', 'Katmai', 'Coppermine', 'Northwood'].includes(blasCore),
    `OpenBLAS runs '${blasCore}' kernels on an AVX2 CPU: set OPENBLAS_CORETYPE (Haswell, SkylakeX, Zen) for this CPU`);
});
