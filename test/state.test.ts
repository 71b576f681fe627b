// Network state as safetensors: exact round trips, determinism, bitwise-exact
// continuation in a fresh process, corruption refused, PyTorch's safetensors reads it.
import test from 'ava';
import * as fs from 'fs';
import * as path from 'path';

import { Network } from '../native/index';
import { decodeSafetensors } from '../native/safetensors';
import { decodeState, encodeState, networkFromState, StateError } from '../native/state';
import { runPython } from '../scripts/python';
import { makeBatch, runNode, tmpDir } from './helpers';

const FIXTURE = path.join(__dirname, 'fixtures', 'run-steps.js');

test('state: save, load and save again gives identical bytes', async (t) => {
  const net = new Network('alexnet-32', { seed: 7 });
  const { images, labels } = makeBatch(4, net.inputSize, 10);
  await net.step(images, labels, { lr: 0.01 });
  const a = encodeState(net);
  const b = encodeState(networkFromState(a, 'a'));
  t.true(a.equals(b));
  const names = [...decodeSafetensors(a).tensors.keys()];
  t.true(names.includes('conv1.weight') && names.includes('momentum.fc8.bias') && names.includes('rng.state'));
});

test('state: two runs with the same seed and data end with identical bytes', async (t) => {
  const states = [];
  for (let run = 0; run < 2; run++) {
    const net = new Network('alexnet-32', { seed: 11 });
    for (let s = 0; s < 3; s++) {
      const { images, labels } = makeBatch(6, net.inputSize, 10, s);
      await net.step(images, labels, { lr: 0.01 });
    }
    states.push(encodeState(net));
  }
  t.true(states[0].equals(states[1]));
});

test('state: a run saved mid-way and continued in a fresh process ends bitwise identical', (t) => {
  const dir = tmpDir();
  const full = path.join(dir, 'full.safetensors');
  const half = path.join(dir, 'half.safetensors');
  const resumed = path.join(dir, 'resumed.safetensors');
  // 4 steps in one process, against 2 + 2 in two processes (with an LR drop at step 2).
  for (const [stateIn, first, steps, out] of [['-', 0, 4, full], ['-', 0, 2, half], [half, 2, 2, resumed]] as const) {
    const r = runNode(FIXTURE, ['alexnet-32', '13', stateIn, String(first), String(steps), out]);
    t.is(r.status, 0, r.stderr);
  }
  t.true(fs.readFileSync(full).equals(fs.readFileSync(resumed)));
  t.false(fs.readFileSync(full).equals(fs.readFileSync(half)));
});

test('state: a corrupted or truncated file is refused with a clear error', (t) => {
  const buf = encodeState(new Network('tiny', { seed: 1 }));
  const flipped = Buffer.from(buf);
  flipped[flipped.length - 3] ^= 0xff;
  t.throws(() => decodeState(flipped, 'ckpt.safetensors'), { instanceOf: StateError, message: /ckpt\.safetensors is corrupt.*checksum/ });
  t.throws(() => decodeState(buf.subarray(0, buf.length - 10), 'ckpt.safetensors'), { message: /ckpt\.safetensors is not a valid safetensors file.*byte range/ });
  t.throws(() => decodeState(Buffer.from('hello world, not a tensor file'), 'x'), { message: /x is not a valid safetensors file/ });
});

test("state: PyTorch's safetensors reads the file as a state dict", (t) => {
  const net = new Network('alexnet-32', { seed: 3 });
  const file = path.join(tmpDir(), 'state.safetensors');
  fs.writeFileSync(file, encodeState(net));
  const code = [
    'import json, sys',
    'from safetensors import safe_open',
    'from safetensors.torch import load_file',
    'sd = load_file(sys.argv[1])',
    'with safe_open(sys.argv[1], "pt") as f: meta = f.metadata()',
    'print(json.dumps({"conv2": list(sd["conv2.weight"].shape), "fc6": list(sd["fc6.weight"].shape), "rng": sd["rng.state"].tolist(),',
    '  "w0": float(sd["conv1.weight"].flatten()[0]), "config": json.loads(meta["config"])["name"], "n": len(sd)}))',
  ].join('\n');
  const script = path.join(tmpDir(), 'read.py');
  fs.writeFileSync(script, code);
  const r = runPython(script, [file]);
  t.is(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim()) as { conv2: number[]; fc6: number[]; rng: number[]; w0: number; config: string; n: number };
  t.deepEqual(out.conv2, [64, 16, 5, 5], 'grouped conv weight is [out, in/groups, kh, kw]');
  t.deepEqual(out.fc6, [512, 576]);
  t.deepEqual(out.rng, [3, 0]);
  t.is(out.w0, net.weight('conv1.weight')[0]);
  t.is(out.config, 'alexnet-32');
  t.is(out.n, 16 * 2 + 1);
});
