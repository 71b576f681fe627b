// Network state as safetensors: exact round trips, determinism, bitwise-exact
// continuation in a fresh process, corruption refused, PyTorch's safetensors reads it;
// the same from a stream read straight into a network (readStateNetwork).
import test from 'ava';
import * as fs from 'fs';
import * as path from 'path';
import { Readable } from 'stream';

import { Network } from '../native/index';
import { dataChecksum, decodeSafetensors, encodeSafetensors, readSafetensors, SafetensorsError, tensor, THREAD_HASH_BYTES } from '../native/safetensors';
import { decodeState, encodeState, encodeStateParts, networkFromState, readStateNetwork, StateError } from '../native/state';
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

// buf as a stream of `size`-byte chunks.
function chunks(buf: Buffer, size: number): Readable {
  return Readable.from((function* () {
    for (let off = 0; off < buf.length; off += size) yield buf.subarray(off, off + size);
  })());
}

test('state: the pieces of encodeStateParts are the file; decoded tensors are views of the buffer', (t) => {
  const net = new Network('tiny', { seed: 4 });
  const parts = encodeStateParts(net);
  const buf = Buffer.concat(parts);
  t.true(buf.equals(encodeState(net)));
  const file = decodeSafetensors(buf);
  const w = file.tensors.get(net.params[0].name)!.data as Float32Array;
  t.is(w.buffer, buf.buffer, 'no copy');
  t.deepEqual(Array.from(w), Array.from(net.weight(net.params[0].name)));
  net.weight(net.params[0].name)[0] = 123;
  t.is(new Float32Array(parts[1].buffer, parts[1].byteOffset, 1)[0], 123, 'the tensor pieces are the network\'s own memory');
});

test('state: read from a stream straight into a fresh network, in chunks of any size', async (t) => {
  for (const [model, sizes] of [['tiny', [1, 7, 8, 4096]], ['alexnet-32', [65536, 1 << 30]]] as const) {
    const net = new Network(model, { seed: 9 });
    const { images, labels } = makeBatch(2, net.inputSize, net.config.classes);
    await net.step(images, labels, { lr: 0.01 });  // momentum and RNG counter not at their start
    const buf = encodeState(net, { lr: '0.5' });
    for (const size of sizes) {
      const r = await readStateNetwork(chunks(buf, size), 'streamed');
      t.true(encodeState(r.net, { lr: '0.5' }).equals(buf), `${model} in ${size}-byte chunks`);
      t.is(r.metadata.lr, '0.5');
      t.is(r.config.name, net.config.name);
    }
  }
});

test('state: a stream that is cut short, corrupt or does not fit is refused like a file', async (t) => {
  const net = new Network('tiny', { seed: 1 });
  const buf = encodeState(net);
  const read = (b: Buffer, size = 1000) => readStateNetwork(chunks(b, size), 'ckpt.safetensors');
  await t.throwsAsync(read(buf.subarray(0, buf.length - 10)), { instanceOf: SafetensorsError, message: /ckpt\.safetensors is not a valid safetensors file: tensor 'rng\.state' .* does not fit .*truncated/ });
  await t.throwsAsync(read(buf.subarray(0, 100)), { instanceOf: SafetensorsError, message: /header length \d+ exceeds the file size 100/ });
  await t.throwsAsync(read(buf.subarray(0, 5)), { instanceOf: SafetensorsError, message: /only 5 bytes/ });
  const flipped = Buffer.from(buf);
  flipped[flipped.length - 3] ^= 0xff;
  await t.throwsAsync(read(flipped), { instanceOf: StateError, message: /ckpt\.safetensors is corrupt.*checksum/ });
  const longer = Buffer.concat([buf, Buffer.from([1, 2, 3])]);  // bytes no tensor owns: refused as in decodeState
  await t.throwsAsync(read(longer), { instanceOf: SafetensorsError, message: /ckpt\.safetensors is not a valid safetensors file: the data section goes on after the last tensor/ });
  t.throws(() => decodeState(longer, 'ckpt.safetensors'), { instanceOf: SafetensorsError, message: /goes on after the last tensor, which ends at \d+ \(\d+ bytes\)/ });
  // A config and tensors that disagree, or no config: refused once the header is in, and
  // the stream is not read further.
  const wrong = encodeSafetensors({ 'fc8.weight': tensor('F32', [2], new Float32Array(2)) }, { config: JSON.stringify(net.config) });
  const source = chunks(Buffer.concat([wrong, Buffer.alloc(1 << 20)]), 64);
  await t.throwsAsync(readStateNetwork(source, 'x'), { instanceOf: StateError, message: /x has no tensor '[^']+' \(expected float32/ });
  t.true(source.destroyed);
  const shapes = encodeSafetensors(Object.fromEntries(net.params.map((p) => [p.name, tensor('F32', [1, ...p.shape], new Float32Array(net.weight(p.name)))])), { config: JSON.stringify(net.config) });
  await t.throwsAsync(readStateNetwork(chunks(shapes, 64), 'x'), { instanceOf: StateError, message: /x: tensor '[^']+' is F32 \[1,.*\] but the network needs F32/ });
  await t.throwsAsync(readStateNetwork(chunks(encodeSafetensors({}, {}), 64), 'x'), { instanceOf: StateError, message: /x has no 'config'/ });
});

test('state: readSafetensors reads any file, aligned or not, with the checksum of dataChecksum', async (t) => {
  const file = encodeSafetensors({
    odd: tensor('U8', [3], Uint8Array.from([1, 2, 3])),  // leaves the next tensor at a byte offset not a multiple of 4
    f: tensor('F32', [2, 2], Float32Array.from([1.5, -2, 3, 4])),
    l: tensor('I64', [1], BigInt64Array.from([-5n])),
  });
  const whole = decodeSafetensors(file);
  for (const size of [1, 5, file.length]) {
    const into = new Uint8Array(16);
    const r = await readSafetensors(chunks(file, size), 'f', () => ({ into: new Map([['f', into]]), checksum: true }));
    t.is(r.checksum, dataChecksum(file, whole.dataStart));
    t.is(r.size, file.length);
    for (const [name, tw] of whole.tensors) t.deepEqual(Array.from(r.tensors.get(name)!.data as ArrayLike<unknown>), Array.from(tw.data as ArrayLike<unknown>), `${name}, ${size}-byte chunks`);
    t.deepEqual(Array.from(new Float32Array(into.buffer)), [1.5, -2, 3, 4], 'the bytes went where the plan said');
  }
  await t.throwsAsync(readSafetensors(chunks(file, 4), 'f', () => ({ into: new Map([['f', new Uint8Array(3)]]) })), { message: /destination of tensor 'f' has 3 bytes, the tensor 16/ });
});

test('state: readSafetensors hashes large data on a thread with the same result, in chunks of any size', async (t) => {
  const big = new Uint8Array(THREAD_HASH_BYTES + 12345);
  for (let i = 0; i < big.length; i++) big[i] = (i * 2654435761) >>> 24;
  const file = encodeSafetensors({ a: tensor('U8', [5], Uint8Array.from([1, 2, 3, 4, 5])), big: tensor('U8', [big.length], big) });
  const want = dataChecksum(file, decodeSafetensors(file).dataStart);
  for (const size of [65536, (3 << 20) + 1, file.length]) {  // the last: one chunk larger than the thread's ring
    const r = await readSafetensors(chunks(file, size), 'f', () => ({ checksum: true }));
    t.is(r.checksum, want, `${size}-byte chunks`);
  }
  file[file.length - 1] ^= 1;
  t.not((await readSafetensors(chunks(file, 65536), 'f', () => ({ checksum: true }))).checksum, want);
  // A stream that fails half way: its error, and the thread is let go.
  const failing = Readable.from((function* () {
    yield file.subarray(0, 20 << 20);
    throw new Error('connection dropped');
  })());
  await t.throwsAsync(readSafetensors(failing, 'f', () => ({ checksum: true })), { message: 'connection dropped' });
});
