// ONNX export (native/onnx.ts, alexnet export --onnx): onnxruntime runs the exported file
// and gives our net.predict's logits on the same input, for the small presets (two columns:
// groups=2 convs, grouped LRN), an LRN far from the paper's constants, and the paper's
// AlexNet; the CLI from a weights file and from a store (a checkpoint key, a run's newest
// or promoted checkpoint) and its errors. From a store whose run names its dataset the graph
// subtracts the mean itself: raw uint8 images through our augmentCenter + net.predict and
// their plain centre crop (0..255) through onnxruntime give the same logits, for alexnet-32
// and the paper's AlexNet.
import test, { type ExecutionContext } from 'ava';
import * as fs from 'fs';
import * as ort from 'onnxruntime-node';
import { onnx } from 'onnx-proto';
import * as path from 'path';

import { saveCheckpoint } from '../activities/checkpoint';
import { openStore } from '../activities/store';
import type { RunRecord } from '../common/contract';
import { datasetKeys, runKeys } from '../common/store-layout';
import { augmentCenter } from '../native/augment';
import { Network, type NetConfig } from '../native/index';
import { centerCropMean, exportOnnx, ONNX_IR_VERSION, ONNX_OPSET } from '../native/onnx';
import { encodeSafetensors, tensor } from '../native/safetensors';
import { encodeState, stateTensors } from '../native/state';
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

// Raw images (n, S, S, 3) uint8 from a seed, as in a batch file.
function rawImages(n: number, S: number, seed: number): Uint8Array {
  const x = new Uint8Array(n * S * S * 3);
  let s = seed >>> 0;
  for (let i = 0; i < x.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    x[i] = s >>> 24;
  }
  return x;
}

// What a client of the ONNX model feeds it: the central crop x crop patch of (n, S, S, 3)
// uint8 images (offset floor((S - crop) / 2)) as float32 0..255 NCHW; no mean.
function centreCrop(raw: Uint8Array, n: number, S: number, crop: number): Float32Array {
  const o = Math.floor((S - crop) / 2), plane = crop * crop;
  const out = new Float32Array(n * 3 * plane);
  for (let i = 0; i < n; i++)
    for (let y = 0; y < crop; y++)
      for (let x = 0; x < crop; x++)
        for (let c = 0; c < 3; c++) out[(i * 3 + c) * plane + y * crop + x] = raw[((i * S + o + y) * S + o + x) * 3 + c];
  return out;
}

// A mean image (S, S, 3) HWC that changes from pixel to pixel and channel to channel, so
// a crop at the wrong offset or in the wrong layout subtracts other values.
function meanImage(S: number): Float32Array {
  const m = new Float32Array(S * S * 3);
  for (let y = 0; y < S; y++)
    for (let x = 0; x < S; x++)
      for (let c = 0; c < 3; c++) m[(y * S + x) * 3 + c] = 120 + 50 * Math.sin(0.37 * x + 0.91 * y + 2.1 * c) + 0.25 * c;
  return m;
}

// A prepared dataset's files, as finalizeDataset and the listing write them: the manifest
// (with the class ids), mean.safetensors, classes.json (ids) and names.json (names).
function writeDataset(dir: string, name: string, S: number, classes: number, { mean = true } = {}): { ids: string[]; names: string[]; mean: Float32Array } {
  const keys = datasetKeys(name);
  const put = (key: string, data: string | Buffer) => {
    fs.mkdirSync(path.join(dir, path.dirname(key)), { recursive: true });
    fs.writeFileSync(path.join(dir, key), data);
  };
  const ids = Array.from({ length: classes }, (_, i) => `n${String(1440764 + 17 * i).padStart(8, '0')}`);
  const names = ids.map((_, i) => `class "${i}", the ${i}th`);
  const image = meanImage(S);
  const split = { shards: 1, images: 10, skipped: 0, listed: 10, skippedByReason: {}, shardImages: [10] };
  put(keys.manifest, JSON.stringify({ name, source: 'x', imageSize: S, seed: 1, shardSize: 10, classes, splits: { train: split }, statsKey: keys.stats, createdAt: new Date().toISOString(), resizeKernel: 'linear', classNames: ids }, null, 1));
  if (mean) put(keys.meanImage, encodeSafetensors({ mean: tensor('F32', [S, S, 3], image) }, { layout: 'HWC', units: 'pixel values 0..255' }));
  put(keys.classes, JSON.stringify(ids));
  put(keys.names, JSON.stringify(names));
  return { ids, names, mean: image };
}

// Runs n raw S x S images through both: ours as evaluation does (augmentCenter with the
// mean, net.predict), the ONNX model on the plain centre crop in 0..255 units.
async function compareRaw(model: Uint8Array | string, net: Network, S: number, mean: Float32Array, n: number, seed: number): Promise<number> {
  const crop = net.config.input.height;
  const raw = rawImages(n, S, seed);
  const ours = await net.predict(await augmentCenter(raw, n, S, crop, { mean }));
  const { logits, probabilities } = await runOnnx(model, centreCrop(raw, n, S, crop), n, net.config);
  if (logits.length !== ours.length) throw new Error(`onnxruntime gave ${logits.length} logits, we ${ours.length}`);
  const probDiff = maxDiff(probabilities, softmaxRows(ours, net.config.classes));
  if (probDiff > 1e-5) throw new Error(`probabilities differ from softmax(logits) by ${probDiff}`);
  return maxDiff(ours, logits) / maxAbs(ours);
}

const floats = (t: onnx.ITensorProto) => {
  const b = t.rawData as Uint8Array;
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};

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
    t.like(meta, { mean_subtracted_in_graph: 'false', input_range: '0..255 RGB minus the dataset mean image (mean-subtracted by the caller)' });
    t.false(ops.includes('Sub'));
    t.false('class_names' in meta);
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

// A run in a file store trained on a dataset there: run.json names it, saveCheckpoint
// wrote the network's checkpoint and latest.json.
async function makeRun(dir: string, runId: string, net: Network, dataset: string): Promise<string> {
  const store = openStore(`file://${dir}`);
  const record: RunRecord = { runId, datasetName: dataset, model: net.config.name ?? 'custom', classes: net.config.classes, seed: 1, createdAt: new Date().toISOString() };
  await store.put(runKeys(runId).record, JSON.stringify(record, null, 1));
  return (await saveCheckpoint(store, runId, net, { epoch: 1, batch: 0 }, { attempt: 0, lr: 0.01 })).key;
}

// The graph's mean subtraction: Sub(images, mean_image) first, its constant the negation of
// what the native augmentCenter makes of an all-zero image (pixel - mean at the patch's
// source pixels), i.e. the same offset and layout as the C++.
async function checkMeanInGraph(t: ExecutionContext, m: onnx.ModelProto, S: number, crop: number, mean: Float32Array): Promise<void> {
  const g = m.graph as onnx.GraphProto;
  t.is(g.node[0].opType, 'Sub');
  t.deepEqual(g.node[0].input, ['images', 'mean_image']);
  t.is(g.node.filter((n) => n.opType === 'Sub').length, 1);
  const init = g.initializer.find((i) => i.name === 'mean_image')!;
  t.deepEqual((init.dims ?? []).map(Number), [1, 3, crop, crop]);
  const zero = await augmentCenter(new Uint8Array(S * S * 3), 1, S, crop, { mean });
  const want = Float32Array.from(zero, (v) => -v);
  t.true(floats(init).every((v, i) => v === want[i]), 'the embedded mean is augmentCenter\'s centre crop of the mean image');
  t.deepEqual(floats(init), centerCropMean(mean, S, crop));
  t.deepEqual(g.input.map((i) => i.name), ['images']);  // the mean is a constant, not an input
}

// alexnet-32 (crop 32) on S=37 images: the offset is floor(5/2) = 2, not a half pixel.
test.serial('cli export --onnx --run: the mean is subtracted in the graph; raw centre crops give net.predict\'s logits (alexnet-32, S=37)', async (t) => {
  const dir = tmpDir('alexnet-onnx-', t);
  const storeDir = path.join(dir, 'store');
  const S = 37;
  const net = new Network('alexnet-32', { seed: 7 });
  for (let s = 0; s < 2; s++) {  // trained a little: weights away from their initialisation
    const { images, labels } = makeBatch(4, net.inputSize, net.config.classes, s);
    await net.step(images, labels, { lr: 0.01 });
  }
  const { ids, names, mean } = writeDataset(storeDir, 'small', S, net.config.classes);
  const key = await makeRun(storeDir, 'r32', net, 'small');
  const out = path.join(dir, 'a32.onnx');
  const r = alexnet('export', '--onnx', out, '--run', 'r32', '--store', `file://${storeDir}`);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /mean of dataset 'small' subtracted in the graph/);
  const relDiff = await compareRaw(out, net, S, mean, 4, 11);
  t.log(`alexnet-32, mean in the graph: max |logit diff| / max |logit| = ${relDiff.toExponential(2)}`);
  t.true(relDiff <= 1e-4, `relative difference ${relDiff}`);

  const m = decode(fs.readFileSync(out));
  await checkMeanInGraph(t, m, S, 32, mean);
  const meta = metadataOf(m);
  t.like(meta, { checkpoint: key, checkpoint_from: 'latest', run: 'r32', dataset: 'small', image_size: '37', crop: '32', crop_offset: '2', input_range: '0..255 RGB', mean_subtracted_in_graph: 'true' });
  t.deepEqual(JSON.parse(meta.class_ids), ids);
  t.deepEqual(JSON.parse(meta.class_names), names);
  t.regex(meta.input, /S=37 .*central 32x32 patch \(offset 2\).*0\.\.255 RGB.*the model subtracts the mean/);
  t.notRegex(meta.input, /caller subtracts/);

  // Sensitivity: the same images with the mean left out, or the mean taken one pixel off
  // the centre, give other logits.
  const raw = rawImages(4, S, 11);
  const ours = await net.predict(await augmentCenter(raw, 4, S, 32, { mean }));
  const shifted = new Float32Array(mean.length);
  shifted.set(mean.subarray(3));
  const off = await net.predict(await augmentCenter(raw, 4, S, 32, { mean: shifted }));
  t.true(maxDiff(off, ours) / maxAbs(ours) > 1e-3, 'a mean one pixel off must change the logits for this check to mean anything');
});

test.serial('cli export --onnx --checkpoint: the paper\'s AlexNet with the mean in the graph (S=256, crop 227)', async (t) => {
  const dir = tmpDir('alexnet-onnx-', t);
  const storeDir = path.join(dir, 'store');
  const S = 256;
  const net = new Network('alexnet', { seed: 13 });
  const { ids, names, mean } = writeDataset(storeDir, 'imagenet', S, 1000);
  const key = await makeRun(storeDir, 'rfull', net, 'imagenet');
  const out = path.join(dir, 'alexnet.onnx');
  const started = Date.now();
  const r = alexnet('export', '--onnx', out, '--checkpoint', key, '--store', `file://${storeDir}`);
  t.is(r.status, 0, r.stderr);
  const exported = Date.now();
  const relDiff = await compareRaw(out, net, S, mean, 2, 12);
  t.log(`alexnet, mean in the graph: max |logit diff| / max |logit| = ${relDiff.toExponential(2)}; export ${((exported - started) / 1000).toFixed(1)} s, both forwards ${((Date.now() - exported) / 1000).toFixed(1)} s`);
  t.true(relDiff <= 1e-4, `relative difference ${relDiff}`);
  const m = decode(fs.readFileSync(out));
  await checkMeanInGraph(t, m, S, 227, mean);
  const meta = metadataOf(m);
  t.like(meta, { checkpoint: key, checkpoint_from: 'checkpoint', dataset: 'imagenet', image_size: '256', crop: '227', crop_offset: '14', mean_subtracted_in_graph: 'true', input_range: '0..255 RGB' });
  t.deepEqual(JSON.parse(meta.class_ids), ids);
  t.deepEqual(JSON.parse(meta.class_names), names);
});

// A file store with run r1: two checkpoints, latest.json naming the second, run.json and
// the files of the dataset it trained on (S = 20; without mean.safetensors if told).
function makeStore(dir: string, { mean = true } = {}): { store: string; nets: Network[]; keys: string[]; mean: Float32Array } {
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
  const toy = writeDataset(dir, 'toy', 20, 5, { mean });
  return { store: `file://${dir}`, nets, keys: ckpts, mean: toy.mean };
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
  t.regex(r.stdout, /input mean-subtracted by the caller/);
  const weightsOnly = decode(fs.readFileSync(out));
  t.like(metadataOf(weightsOnly), { checkpoint: W, checkpoint_from: 'weights', model: 'tiny', mean_subtracted_in_graph: 'false' });
  t.false((weightsOnly.graph as onnx.GraphProto).node.some((n) => n.opType === 'Sub'));
  t.deepEqual(fs.readdirSync(dir).sort(), ['W.safetensors', 'w.onnx']);  // no temporary file left

  const { store, nets, keys, mean } = makeStore(path.join(dir, 'store'));
  // From the store the export knows the dataset: raw crops in, the graph subtracts the mean.
  const expectModel = async (file: string, which: number) => {
    const relDiff = await compareRaw(file, nets[which], 20, mean, 3, 5);
    t.true(relDiff <= 1e-4, `checkpoint ${which}: relative difference ${relDiff}`);
  };
  r = alexnet('export', '--onnx', out, '--checkpoint', keys[0], '--store', store);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stderr, /\(given\)/);
  await expectModel(out, 0);
  const meta = metadataOf(decode(fs.readFileSync(out)));
  t.like(meta, { checkpoint: keys[0], checkpoint_from: 'checkpoint', run: 'r1', dataset: 'toy', image_size: '20', resize_kernel: 'linear', crop: '16', crop_offset: '2', mean_subtracted_in_graph: 'true', input_range: '0..255 RGB' });
  t.regex(meta.input, /S=20 \(linear\).*central 16x16 patch \(offset 2\).*0\.\.255 RGB units; the model subtracts the mean/);
  t.is(JSON.parse(meta.class_names).length, 5);

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

  // A weights file with the dataset named: the mean goes into the graph too.
  r = alexnet('export', '--onnx', out, '--weights', W, '--store', store, '--dataset-name', 'toy');
  t.is(r.status, 0, r.stderr);
  const relDiff = await compareRaw(out, net, 20, mean, 3, 6);
  t.true(relDiff <= 1e-4, `relative difference ${relDiff}`);
  t.like(metadataOf(decode(fs.readFileSync(out))), { checkpoint: W, checkpoint_from: 'weights', dataset: 'toy', mean_subtracted_in_graph: 'true' });
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
  const noMean = makeStore(path.join(dir, 'store-no-mean'), { mean: false });
  r = alexnet('export', '--onnx', out, '--run', 'r1', '--store', noMean.store);
  t.is(r.status, 1);
  t.regex(r.stderr, /^alexnet: DatasetMissing: dataset 'toy' has no mean image in file:.* \(no datasets\/toy\/mean\.safetensors\)/m);
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
