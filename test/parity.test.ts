// PyTorch parity: the same weights and input through `alexnet step` and through
// scripts/torch_step.py (Debian's PyTorch), compared tensor by tensor: logits, loss,
// every gradient and every updated weight within max|a-b| / max|b| <= 1e-4.
import test from 'ava';
import * as fs from 'fs';
import * as path from 'path';

import { Network } from '../native/index';
import { encodeSafetensors, tensor } from '../native/safetensors';
import { lastJsonLine, runPython } from '../scripts/python';
import { alexnet, makeBatch, tmpDir } from './helpers';

interface Comparison { ok: boolean; tensors: Record<string, { rel: number }>; missing: string[] }

function parity(model: string, batch: number, dropout: boolean, int64Labels: boolean) {
  const dir = tmpDir('alexnet-parity-');
  const W = path.join(dir, 'W.safetensors');
  const X = path.join(dir, 'X.safetensors');
  const O = path.join(dir, 'O.safetensors');
  const R = path.join(dir, 'R.safetensors');
  let r = alexnet('init', '--model', model, '--seed', '21', '--out', W);
  if (r.status !== 0) throw new Error(r.stderr);
  const net = new Network(model);
  const { images, labels } = makeBatch(batch, net.inputSize, net.config.classes, 5);
  const { channels: c, height: h, width: w } = net.config.input;
  fs.writeFileSync(X, encodeSafetensors({
    images: tensor('F32', [batch, c, h, w], images),
    labels: int64Labels ? tensor('I64', [batch], BigInt64Array.from(labels, (l) => BigInt(l))) : tensor('I32', [batch], labels),
  }));
  r = alexnet('step', '--model', model, '--weights', W, '--input', X, '--out', O, '--lr', '0.01', ...(dropout ? [] : ['--no-dropout']));
  if (r.status !== 0) throw new Error(`alexnet step failed: ${r.stderr}`);
  const ref = runPython('torch_step.py', ['--weights', W, '--input', X, '--lr', '0.01', '--out', R, ...(dropout ? ['--masks', O] : [])]);
  if (ref.status !== 0) throw new Error(`torch_step.py failed: ${ref.stderr}`);
  const cmp = runPython('compare_tensors.py', [O, R, '--tol', '1e-4']);
  return { status: cmp.status, result: lastJsonLine<Comparison>(cmp.stdout), stderr: cmp.stderr };
}

const CASES: [string, number, boolean, boolean][] = [
  ['alexnet-32', 8, true, true],   // small variant, dropout masks shared with PyTorch
  ['alexnet-64', 4, true, false],
  ['alexnet', 2, false, true],     // the paper's full network at 227x227
];

for (const [model, batch, dropout, int64] of CASES) {
  test(`parity: ${model} step matches PyTorch (batch ${batch}${dropout ? ', dropout' : ''})`, (t) => {
    const { status, result, stderr } = parity(model, batch, dropout, int64);
    const worst = Object.entries(result.tensors).sort((a, b) => b[1].rel - a[1].rel)[0];
    t.log(`worst tensor: ${worst[0]} rel ${worst[1].rel.toExponential(2)} over ${Object.keys(result.tensors).length} tensors`);
    t.deepEqual(result.missing, []);
    t.true(result.ok, `${stderr} ${JSON.stringify(result.tensors)}`);
    t.is(status, 0);
    // logits, loss, 16 gradients and 16 updated weights (+ masks with dropout)
    t.true(Object.keys(result.tensors).length >= 2 + 16 + 16);
  });
}
