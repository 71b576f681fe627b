// PyTorch parity: the same weights and input through `alexnet step` and through
// scripts/torch_step.py (Debian's PyTorch, fp32), compared tensor by tensor: logits,
// loss, every gradient and every updated weight within max|a-b| / max|b| <= 1e-4.
//
// Why some cases use weights with std 0.03 rather than the paper's 0.01: with the
// paper's initialization (std 0.01, biases 1) a deep net's activations are nearly the
// same at every position, and max-pool windows hold near-ties (measured on alexnet-64:
// relative gaps down to 2.6e-9, below fp32's 6e-8 resolution). Which element wins such a
// tie is decided by rounding, in PyTorch's fp32 as in ours, so the conv gradients routed
// through it differ by up to ~1e-2 while everything else agrees to ~1e-7. The paper-init
// full AlexNet case therefore checks logits, loss and the fully connected layers at 1e-4
// and the conv layers at 5e-2 (a bound that still fails on any real indexing error).
//
// The full AlexNet at std 0.03 meets the same thing more rarely, and depending on the CPU
// (OpenBLAS and PyTorch's oneDNN pick kernels per ISA, so the last bits differ): on the
// machine of 2026-11-29 elements near ReLU/max-pool ties flipped, and the conv gradients
// differed by up to 3.5e-3 (conv5 2.5e-4) while the logits, loss and fc layers agreed to
// 2e-6, with code that passed at 1e-4 on another machine. So that case checks logits,
// loss and fc layers at 1e-4 and the conv layers at 1e-2.
import test from 'ava';
import * as fs from 'fs';
import * as path from 'path';

import { Network } from '../native/index';
import { encodeSafetensors, tensor } from '../native/safetensors';
import { lastJsonLine, runPython } from '../scripts/python';
import { alexnet, makeBatch, tmpDir } from './helpers';

interface Comparison { ok: boolean; tensors: Record<string, { rel: number }>; missing: string[] }

interface Case { model: string; batch: number; dropout: boolean; int64Labels: boolean; weightStd?: number }

function runStep(c: Case): { O: string; R: string } {
  const dir = tmpDir('alexnet-parity-');
  const [W, X, O, R] = ['W', 'X', 'O', 'R'].map((n) => path.join(dir, `${n}.safetensors`));
  let r = alexnet('init', '--model', c.model, '--seed', '21', '--out', W, ...(c.weightStd ? ['--weight-std', String(c.weightStd)] : []));
  if (r.status !== 0) throw new Error(r.stderr);
  const net = new Network(c.model);
  const { images, labels } = makeBatch(c.batch, net.inputSize, net.config.classes, 5);
  const { channels, height, width } = net.config.input;
  fs.writeFileSync(X, encodeSafetensors({
    images: tensor('F32', [c.batch, channels, height, width], images),
    labels: c.int64Labels ? tensor('I64', [c.batch], BigInt64Array.from(labels, (l) => BigInt(l))) : tensor('I32', [c.batch], labels),
  }));
  r = alexnet('step', '--model', c.model, '--weights', W, '--input', X, '--out', O, '--lr', '0.01', ...(c.dropout ? [] : ['--no-dropout']));
  if (r.status !== 0) throw new Error(`alexnet step failed: ${r.stderr}`);
  const ref = runPython('torch_step.py', ['--weights', W, '--input', X, '--lr', '0.01', '--out', R, ...(c.dropout ? ['--masks', O] : [])]);
  if (ref.status !== 0) throw new Error(`torch_step.py failed: ${ref.stderr}`);
  return { O, R };
}

function compare(O: string, R: string, tol: number, names?: string[]): Comparison & { status: number; stderr: string } {
  const cmp = runPython('compare_tensors.py', [O, R, '--tol', String(tol), ...(names ? ['--names', names.join(',')] : [])]);
  return { ...lastJsonLine<Comparison>(cmp.stdout), status: cmp.status, stderr: cmp.stderr };
}

const worst = (c: Comparison) => Object.entries(c.tensors).sort((a, b) => b[1].rel - a[1].rel)[0];

const STRICT: Case[] = [
  { model: 'alexnet-32', batch: 8, dropout: true, int64Labels: true },
  { model: 'alexnet-64', batch: 4, dropout: true, int64Labels: false, weightStd: 0.03 },
];

for (const c of STRICT) {
  test.serial(`parity: ${c.model} step matches PyTorch within 1e-4 (batch ${c.batch}${c.dropout ? ', dropout' : ''}${c.weightStd ? `, weight std ${c.weightStd}` : ', paper init'})`, (t) => {
    const { O, R } = runStep(c);
    const result = compare(O, R, 1e-4);
    const [name, { rel }] = worst(result);
    t.log(`worst tensor: ${name} rel ${rel.toExponential(2)} over ${Object.keys(result.tensors).length} tensors`);
    t.deepEqual(result.missing, []);
    t.true(result.ok, `${result.stderr} ${JSON.stringify(result.tensors)}`);
    t.is(result.status, 0);
    // logits, loss, 16 gradients and 16 updated weights (+ masks with dropout)
    t.true(Object.keys(result.tensors).length >= 2 + 16 + 16);
  });
}

test.serial('parity: alexnet step (batch 2, weight std 0.03) matches PyTorch: logits, loss and fc layers within 1e-4, conv layers within 1e-2 (see the header)', (t) => {
  const { O, R } = runStep({ model: 'alexnet', batch: 2, dropout: false, int64Labels: true, weightStd: 0.03 });
  const deep = ['logits', 'loss', ...['fc6', 'fc7', 'fc8'].flatMap((l) => ['weight', 'bias'].flatMap((k) => [`grad.${l}.${k}`, `${l}.${k}`]))];
  const strict = compare(O, R, 1e-4, deep);
  t.true(strict.ok, strict.stderr);
  t.log(`logits, loss, fc worst: ${worst(strict)[0]} rel ${worst(strict)[1].rel.toExponential(2)}`);
  const all = compare(O, R, 1e-2);
  t.true(all.ok, all.stderr);
  t.deepEqual(all.missing, []);
  t.true(Object.keys(all.tensors).length >= 2 + 16 + 16);
  t.log(`all tensors worst: ${worst(all)[0]} rel ${worst(all)[1].rel.toExponential(2)}`);
});

test.serial('parity: the paper-initialized AlexNet matches PyTorch (fc layers 1e-4; conv layers 5e-2, see the header)', (t) => {
  const { O, R } = runStep({ model: 'alexnet', batch: 2, dropout: false, int64Labels: false });
  const fc = ['logits', 'loss', ...['fc6', 'fc7', 'fc8'].flatMap((l) => ['weight', 'bias'].flatMap((k) => [`grad.${l}.${k}`, `${l}.${k}`]))];
  const strict = compare(O, R, 1e-4, fc);
  t.true(strict.ok, strict.stderr);
  t.log(`fc and logits worst: ${worst(strict)[0]} rel ${worst(strict)[1].rel.toExponential(2)}`);
  const loose = compare(O, R, 5e-2);
  t.true(loose.ok, loose.stderr);
  t.log(`all tensors worst: ${worst(loose)[0]} rel ${worst(loose)[1].rel.toExponential(2)}`);
});
