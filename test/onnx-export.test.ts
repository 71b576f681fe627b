// ONNX export (native/onnx.ts, alexnet export --onnx): onnxruntime runs the exported file
// and gives our net.predict's logits on the same input, for the small presets (two columns:
// groups=2 convs, grouped LRN), an LRN far from the paper's constants, and the paper's
// AlexNet; the CLI from a weights file and from a store (a checkpoint key, a run's newest
// or promoted checkpoint) and its errors.
import test from 'ava';
import * as fs from 'fs';
import * as ort from 'onnxruntime-node';
import { onnx } from 'onnx-proto';
import * as path from 'path';

import { Network, type NetConfig } from '../native/index';
import { exportOnnx, ONNX_IR_VERSION, ONNX_OPSET } from '../native/onnx';
import { encodeSafetensors } from '../native/safetensors';
import { encodeState, stateTensors } from '../native/state';
import { runKeys } from '../common/store-layout';
import { alexnet, makeBatch, tmpDir } from './helpers';

// Mean-subtracted pixels: uniform in [-128, 128), from a seed.
function pixels(n: number, seed: number): Float32Array {
  const x = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    x[i] = (s / 2 ** 32 - 0.5) * 256;
  }
  return x;
}

const maxAbs = (a: ArrayLike<number>) => Array.from(a).reduce((m, v) => Math.max(m, Math.abs(v)), 0);
const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

function softmaxRows(logits: Float32Array, classes: number): Float64Array {
  const p = new Float64Array(logits.length);
  for (let r = 0; r < logits.length / classes; r++) {
    const row = logits.subarray(r * classes, (r + 1) * classes);
    const m = Math.max(...row);
    const e = Array.from(row, (v) => Math.exp(v - m));
    const sum = e.reduce((a, b) => a + b, 0);
    e.forEach((v, j) => (p[r * classes + j] = v / sum));
  }
  return p;
}

async function runOnnx(model: Uint8Array | string, images: Float32Array, n: number, config: NetConfig): Promise<{ logits: Float32Array; probabilities: Float32Array }> {
  const session = typeof model === 'string' ? await ort.InferenceSession.create(model) : await ort.InferenceSession.create(model);
  try {
    const { channels, height, width } = config.input;
    const out = await session.run({ images: new ort.Tensor('float32', images, [n, channels, height, width]) });
    return { logits: out.logits.data as Float32Array, probabilities: out.probabilities.data as Float32Array };
  } finally {
    await session.release();
  }
}

// Exports `net`, runs a batch of 3 through onnxruntime and through net.predict: the largest
// logit difference relative to the logits' scale.
async function compare(net: Network, seed: number): Promise<{ bytes: Uint8Array; relDiff: number; ours: Float32Array; theirs: Float32Array }> {
  const bytes = exportOnnx(net);
  const images = pixels(3 * net.inputSize, seed);
  const ours = await net.predict(images);
  const { logits, probabilities } = await runOnnx(bytes, images, 3, net.config);
  if (logits.length !== ours.length) throw new Error(`onnxruntime gave ${logits.length} logits, we ${ours.length}`);
  const probDiff = maxDiff(probabilities, softmaxRows(ours, net.config.classes));
  if (probDiff > 1e-5) throw new Error(`probabilities differ from softmax(logits) by ${probDiff}`);
  return { bytes, relDiff: maxDiff(ours, logits) / maxAbs(ours), ours, theirs: logits };
}

const decode = (bytes: Uint8Array) => onnx.ModelProto.decode(bytes);
const attr = (n: onnx.INodeProto, name: string) => (n.attribute ?? []).find((a) => a.name === name)!;
const metadataOf = (m: onnx.ModelProto) => Object.fromEntries(m.metadataProps.map((p) => [p.key, p.value]));

for (const model of ['tiny', 'alexnet-32']) {
  test.serial(`onnx export ${model}: onnxruntime's logits equal net.predict's (batch of 3)`, async (t) => {
    const net = new Network(model, { seed: 5 });
    if (model === 'alexnet-32') {  // weights moved away from their initialisation
      for (let s = 0; s < 2; s++) {
        const { images, labels } = makeBatch(4, net.inputSize, net.config.classes, s);
        await net.step(images, labels, { lr: 0.01 });
      }
    }
    const { bytes, relDiff } = await compare(net, 1);
    t.log(`${model}: max |logit diff| / max |logit| = ${relDiff.toExponential(2)}, ${bytes.byteLength} bytes`);
    t.true(relDiff <= 1e-4, `relative difference ${relDiff}`);

    const m = decode(bytes);
    t.is(Number(m.irVersion), ONNX_IR_VERSION);
    t.deepEqual(m.opsetImport.map((o) => [o.domain, Number(o.version)]), [['', ONNX_OPSET]]);
    const g = m.graph as onnx.GraphProto;
    t.deepEqual(g.input.map((i) => i.name), ['images']);
    t.deepEqual((g.input[0].type?.tensorType?.shape?.dim ?? []).map((d) => d.dimParam || Number(d.dimValue)), ['N', 3, net.config.input.height, net.config.input.width]);
    t.deepEqual(g.output.map((o) => o.name), ['logits', 'probabilities']);
    const ops = g.node.map((n) => n.opType);
    t.false(ops.includes('Dropout'));
    t.is(ops.filter((o) => o === 'Conv').length, 5);
    t.is(ops.filter((o) => o === 'LRN').length, 4);  // two grouped LRNs, two columns each
    t.is(ops.filter((o) => o === 'Split').length, 2);
    t.is(ops.filter((o) => o === 'Concat').length, 2);
    const group = (name: string) => Number(attr(g.node.find((n) => n.name === name)!, 'group').i);
    t.deepEqual(['conv1', 'conv2', 'conv3', 'conv4', 'conv5'].map(group), [1, 2, 1, 2, 2]);
    const lrn = g.node.find((n) => n.opType === 'LRN')!;
    t.is(Number(attr(lrn, 'size').i), 5);
    t.true(Math.abs(attr(lrn, 'alpha').f! - 5e-4) < 1e-9);  // the paper's 1e-4, times ONNX's size
    t.deepEqual(g.initializer.map((i) => i.name).sort(), net.params.map((p) => p.name).sort());
    const meta = metadataOf(m);
    t.is(meta.model, model);
    t.is(meta.classes, String(net.config.classes));
    t.regex(meta.input, /shorter side was resized to S.*minus that dataset's mean image.*the caller subtracts the mean/);
    t.deepEqual(JSON.parse(meta.config), net.config);
    // The batch is dynamic: one image gives the first image's logits.
    const one = await runOnnx(bytes, pixels(3 * net.inputSize, 1).subarray(0, net.inputSize), 1, net.config);
    t.true(maxDiff(one.logits, (await net.predict(pixels(3 * net.inputSize, 1))).subarray(0, net.config.classes)) <= 1e-4 * maxAbs(one.logits));
  });
}

// An LRN far from the paper's constants, where the normalization changes the logits a lot:
// an even size (our window is size/2 either side: 5 channels for size 4), another alpha,
// beta and k, and groups 2 and 4. The same weights with ungrouped LRNs give other logits,
// so the comparison sees a wrong channel window.
test.serial('onnx export: a strong, grouped LRN of even size matches; ungrouping it would not', async (t) => {
  const base = new Network('alexnet-32').config;
  const strong = (groups: number[]): NetConfig => {
    let i = 0;
    return { ...base, weightStd: 0.05, layers: base.layers.map((l) => (l.type === 'lrn' ? { ...l, size: 4, alpha: 2e-3, beta: 0.6, k: 1.5, groups: groups[i++] } : l)) };
  };
  const net = new Network(strong([4, 2]), { seed: 9 });
  const { relDiff, ours } = await compare(net, 2);
  t.log(`strong LRN: relative difference ${relDiff.toExponential(2)}`);
  t.true(relDiff <= 1e-4, `relative difference ${relDiff}`);
  const ungrouped = new Network(strong([1, 1]), { init: false });
  for (const p of net.params) ungrouped.weight(p.name).set(net.weight(p.name));
  const other = await ungrouped.predict(pixels(3 * net.inputSize, 2));
  t.true(maxDiff(other, ours) / maxAbs(ours) > 1e-2, 'the grouping must matter for this check to mean anything');
});

test.serial('onnx export alexnet (the paper\'s): onnxruntime\'s logits equal net.predict\'s', async (t) => {
  const net = new Network('alexnet', { seed: 3 });
  const started = Date.now();
  const { bytes, relDiff } = await compare(net, 3);
  t.log(`alexnet: relative difference ${relDiff.toExponential(2)}, ${(bytes.byteLength / 1e6).toFixed(1)} MB, export + both forwards ${((Date.now() - started) / 1000).toFixed(1)} s`);
  t.true(relDiff <= 1e-4, `relative difference ${relDiff}`);
  const ops = (decode(bytes).graph as onnx.GraphProto).node.map((n) => n.opType);
  t.deepEqual([...new Set(ops)].sort(), ['Concat', 'Conv', 'Flatten', 'Gemm', 'LRN', 'MaxPool', 'Relu', 'Softmax', 'Split']);
});

// A file store with run r1: two checkpoints, latest.json naming the second, run.json and
// the manifest of the dataset it trained on.
function makeStore(dir: string): { store: string; nets: Network[]; keys: string[] } {
  const keys = runKeys('r1');
  const nets = [new Network('tiny', { seed: 21 }), new Network('tiny', { seed: 22 })];
  const ckpts = [keys.checkpoint(0, 5, 0), keys.checkpoint(1, 0, 0)];
  const put = (key: string, data: string | Buffer) => {
    fs.mkdirSync(path.join(dir, path.dirname(key)), { recursive: true });
    fs.writeFileSync(path.join(dir, key), data);
  };
  ckpts.forEach((key, i) => put(key, encodeState(nets[i], { runId: 'r1', epoch: String(i), batch: '0', attempt: '0', lr: '0.01' })));
  put(keys.latest, JSON.stringify({ key: ckpts[1], epoch: 1, batch: 0, attempt: 0, lr: 0.01, writtenAt: new Date().toISOString() }));
  put(keys.record, JSON.stringify({ runId: 'r1', datasetName: 'toy', model: 'tiny', classes: 5, seed: 21, createdAt: new Date().toISOString() }));
  put('datasets/toy/manifest.json', JSON.stringify({ name: 'toy', source: 'x', imageSize: 20, classes: 5, resizeKernel: 'linear' }));
  return { store: `file://${dir}`, nets, keys: ckpts };
}

test.serial('cli export --onnx: from a weights file, a checkpoint key and a run (newest, then promoted)', async (t) => {
  const dir = tmpDir('alexnet-onnx-', t);
  const W = path.join(dir, 'W.safetensors');
  t.is(alexnet('init', '--model', 'tiny', '--seed', '4', '--out', W).status, 0);
  const out = path.join(dir, 'w.onnx');
  let r = alexnet('export', '--onnx', out, '--weights', W);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /wrote .*w\.onnx: tiny, 5 classes/);
  const net = new Network('tiny', { seed: 4 });
  const images = pixels(3 * net.inputSize, 4);
  const ours = await net.predict(images);
  t.true(maxDiff((await runOnnx(out, images, 3, net.config)).logits, ours) <= 1e-4 * maxAbs(ours));
  t.like(metadataOf(decode(fs.readFileSync(out))), { checkpoint: W, checkpoint_from: 'weights', model: 'tiny' });
  t.deepEqual(fs.readdirSync(dir).sort(), ['W.safetensors', 'w.onnx']);  // no temporary file left

  const { store, nets, keys } = makeStore(path.join(dir, 'store'));
  const expectModel = async (file: string, which: number) => {
    const got = (await runOnnx(file, images, 3, net.config)).logits;
    const want = await nets[which].predict(images);
    t.true(maxDiff(got, want) <= 1e-4 * maxAbs(want), `checkpoint ${which}`);
  };
  r = alexnet('export', '--onnx', out, '--checkpoint', keys[0], '--store', store);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stderr, /\(given\)/);
  await expectModel(out, 0);
  const meta = metadataOf(decode(fs.readFileSync(out)));
  t.like(meta, { checkpoint: keys[0], checkpoint_from: 'checkpoint', run: 'r1', dataset: 'toy', image_size: '20', resize_kernel: 'linear', crop: '16', crop_offset: '2' });
  t.regex(meta.input, /S=20 \(linear\).*central 16x16 patch \(offset 2\).*minus the mean/);

  r = alexnet('export', '--onnx', out, '--run', 'r1', '--store', store);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stderr, /run r1: .*00001-0000000-000\.safetensors \(newest in latest\.json; nothing promoted\)/);
  await expectModel(out, 1);
  t.like(metadataOf(decode(fs.readFileSync(out))), { checkpoint: keys[1], checkpoint_from: 'latest' });

  fs.writeFileSync(path.join(dir, 'store', runKeys('r1').serving), JSON.stringify({ checkpoint: keys[0], top1Error: 0.5 }));
  r = alexnet('export', '--onnx', out, '--run', 'r1', '--store', store);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stderr, /00000-0000005-000\.safetensors \(promoted in serving\.json\)/);
  await expectModel(out, 0);
  t.like(metadataOf(decode(fs.readFileSync(out))), { checkpoint: keys[0], checkpoint_from: 'serving' });
});

test.serial('cli export --onnx: clear errors for a missing checkpoint, an unwritable output, weights without a config', (t) => {
  const dir = tmpDir('alexnet-onnx-', t);
  const { store } = makeStore(path.join(dir, 'store'));
  const out = path.join(dir, 'm.onnx');
  const missing = runKeys('r1').checkpoint(7, 0, 0);
  let r = alexnet('export', '--onnx', out, '--checkpoint', missing, '--store', store);
  t.is(r.status, 1);
  t.regex(r.stderr, new RegExp(`^alexnet: CheckpointMissing: checkpoint ${missing} does not exist in file://`));
  r = alexnet('export', '--onnx', out, '--run', 'r2', '--store', store);
  t.is(r.status, 1);
  t.regex(r.stderr, /run 'r2' has no checkpoint in file:.* \(no runs\/r2\/latest\.json\)/);
  r = alexnet('export', '--onnx', out, '--weights', path.join(dir, 'nope.safetensors'));
  t.is(r.status, 2);
  t.regex(r.stderr, /--weights .*nope\.safetensors: no such file/);

  const W = path.join(dir, 'W.safetensors');
  t.is(alexnet('init', '--model', 'tiny', '--out', W).status, 0);
  r = alexnet('export', '--onnx', path.join(dir, 'no-such-folder', 'm.onnx'), '--weights', W);
  t.is(r.status, 2);
  t.regex(r.stderr, /--onnx .*no-such-folder\/m\.onnx: cannot write there: .*no-such-folder is not an existing folder/);
  fs.mkdirSync(path.join(dir, 'taken.onnx'));
  r = alexnet('export', '--onnx', path.join(dir, 'taken.onnx'), '--weights', W);
  t.is(r.status, 2);
  t.regex(r.stderr, /taken\.onnx: is a folder/);
  t.false(fs.existsSync(out));

  // Weights without the config in the metadata (as PyTorch would write them): --model names it.
  const bare = path.join(dir, 'bare.safetensors');
  const tensors = stateTensors(new Network('tiny', { seed: 1 }));
  fs.writeFileSync(bare, encodeSafetensors(Object.fromEntries(Object.entries(tensors).filter(([k]) => !k.startsWith('momentum.') && k !== 'rng.state'))));
  r = alexnet('export', '--onnx', out, '--weights', bare);
  t.is(r.status, 2);
  t.regex(r.stderr, /bare\.safetensors has no 'config' in its metadata .*pass --model/);
  r = alexnet('export', '--onnx', out, '--weights', bare, '--model', 'alexnet-32');
  t.is(r.status, 1);
  t.regex(r.stderr, /tensor 'conv1\.weight' is F32 \[4,3,3,3\] but the network needs F32 \[32,3,5,5\]/);
  r = alexnet('export', '--onnx', out, '--weights', bare, '--model', 'tiny');
  t.is(r.status, 0, r.stderr);

  r = alexnet('export', '--onnx', out);
  t.is(r.status, 2);
  t.regex(r.stderr, /give --checkpoint KEY, --run RUN_ID \(both with --store\) or --weights FILE/);
  r = alexnet('export', '--weights', W);
  t.is(r.status, 2);
  t.regex(r.stderr, /missing --onnx/);
  r = alexnet('export', '--onnx', out, '--run', 'r1');
  t.is(r.status, 2);
  t.regex(r.stderr, /--run needs --store URI/);
  t.is(alexnet('export', '--onnx', out, '--weights', path.join(dir, 'x'), '--run', 'r1', '--store', store).status, 2);
  t.regex(alexnet('export', '--help').stdout, /^usage: alexnet export --onnx OUT\.onnx/);
});
