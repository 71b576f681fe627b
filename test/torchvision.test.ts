// torchvision's AlexNet (model torchvision-alexnet, `alexnet import-weights torchvision`):
// torchvision.models.alexnet() with random weights (Debian's python3-torchvision, nothing
// downloaded; scripts/torchvision_parity.py) saved as a .pth, imported into a store, then
// ours against torchvision's: the network on raw images (our mean image and conv1 scaled
// by 1/(255 std) against torchvision's normalization), `alexnet classify` and `alexnet
// serve` on JPEGs against torchvision's own preprocessing (PIL, AlexNet_Weights' transforms)
// and model, `alexnet export --onnx` through onnxruntime, and `alexnet step` against
// scripts/torch_step.py. Differences are relative: max|ours - theirs| / max|theirs| over
// all logits (or probabilities) of the images, within 1e-4. The import of the same state
// dict as .safetensors gives the same checkpoint tensors, bit for bit; a missing tensor, a
// wrong shape and an existing run are refused by name with nothing written. Fine-tuning's
// start (initRun with initFrom the imported run, 10 classes) keeps conv1..fc7 and draws fc8.
import test from 'ava';
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as ort from 'onnxruntime-node';
import * as path from 'path';
import sharp from 'sharp';

import { loadInferenceModel } from '../activities/model';
import { initRun } from '../activities/run';
import { runKeys } from '../common/store-layout';
import { decodeSafetensors, encodeSafetensors, tensor, type Tensor } from '../native/safetensors';
import { decodeState } from '../native/state';
import { lastJsonLine, runPython } from '../scripts/python';
import { alexnet, CLI, makeBatch, tmpDir } from './helpers';

const N = 3;              // raw images through the network
const CROP = 224, S = 256;
const TOL = 1e-4;

interface Fixture { dir: string; store: string; raw: Float32Array; torchLogits: Float32Array; jpegs: string[] }
let fixture: Fixture;

// Raw 0..255 RGB pixels from a seed (NCHW).
function rawPixels(n: number, seed: number): Float32Array {
  const x = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    x[i] = Math.floor((s / 2 ** 32) * 256);
  }
  return x;
}

// A photo-like JPEG: smooth colour gradients and a few discs, with some noise.
async function writeJpeg(file: string, width: number, height: number, seed: number): Promise<void> {
  const px = Buffer.alloc(width * height * 3);
  const noise = rawPixels(width * height, seed);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = y * width + x;
      const disc = ((x - width * 0.3 - seed * 7) ** 2 + (y - height * 0.6) ** 2) < (height / 5) ** 2;
      px[3 * i] = disc ? 220 : (255 * x) / width;
      px[3 * i + 1] = (255 * y) / height * (disc ? 0.2 : 1);
      px[3 * i + 2] = 128 + 100 * Math.sin((x + y + seed * 13) / 17) * 0.5 + (noise[i] - 128) * 0.15;
    }
  }
  await sharp(px, { raw: { width, height, channels: 3 } }).jpeg({ quality: 92 }).toFile(file);
}

function relative(ours: ArrayLike<number>, theirs: ArrayLike<number>): { abs: number; rel: number } {
  let abs = 0, scale = 0;
  for (let i = 0; i < theirs.length; i++) {
    abs = Math.max(abs, Math.abs(ours[i] - theirs[i]));
    scale = Math.max(scale, Math.abs(theirs[i]));
  }
  return { abs, rel: abs / scale };
}

// A tensor's bytes, for comparing large tensors bit for bit (ava's deepEqual walks them slowly).
function tensorBytes(file: { tensors: Map<string, { data: ArrayBufferView }> }, name: string): Buffer {
  const data = file.tensors.get(name)!.data;
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

function python(args: string[]): string {
  const r = runPython('torchvision_parity.py', args);
  if (r.status !== 0) throw new Error(`torchvision_parity.py ${args[0]} failed: ${r.stderr}`);
  return r.stdout;
}

// torchvision's probabilities of each image, through its own preprocessing.
function torchvisionProbabilities(images: string[]): number[][] {
  return python(['classify', path.join(fixture.dir, 'tv.pth'), ...images]).trim().split('\n').map((l) => (JSON.parse(l) as { probabilities: number[] }).probabilities);
}

test.before(async () => {
  const dir = tmpDir('alexnet-torchvision-');
  python(['weights', dir, '7']);
  const store = path.join(dir, 'store');
  const r = alexnet('import-weights', 'torchvision', path.join(dir, 'tv.pth'), '--store', store, '--run', 'tv');
  if (r.status !== 0) throw new Error(`import-weights failed: ${r.stderr}`);
  const raw = rawPixels(N * 3 * CROP * CROP, 11);
  const X = path.join(dir, 'raw.safetensors'), L = path.join(dir, 'logits.safetensors');
  fs.writeFileSync(X, encodeSafetensors({ images: tensor('F32', [N, 3, CROP, CROP], raw) }));
  python(['logits', path.join(dir, 'tv.pth'), X, L]);
  const torchLogits = decodeSafetensors(fs.readFileSync(L)).tensors.get('logits')!.data as Float32Array;
  // Shorter side 256 (nothing resized) and even margins: torchvision's crop is ours exactly.
  const sizes = [[256, 256], [320, 256], [256, 288]];
  const jpegs = sizes.map(([w, h]) => path.join(dir, `photo-${w}x${h}.jpg`));
  await Promise.all(sizes.map(([w, h], i) => writeJpeg(jpegs[i], w, h, i + 1)));
  fixture = { dir, store, raw, torchLogits, jpegs };
});

test.serial('the network: our forward of torchvision\'s weights equals torchvision\'s on raw images within 1e-4 (mean image, conv1 folded)', async (t) => {
  const model = await loadInferenceModel({ store: fixture.store, run: 'tv' });
  t.is(model.net.config.name, 'torchvision-alexnet');
  t.deepEqual([model.imageSize, model.crop, model.resizeKernel, model.classNames.length], [S, CROP, 'linear', 1000]);
  t.is(model.classNames[0], 'tench', 'the ImageNet class names torchvision ships');
  // What inference feeds the network: raw pixels minus the mean image at the crop.
  const off = (S - CROP) / 2;
  const x = new Float32Array(fixture.raw.length);
  for (let n = 0; n < N; n++) {
    for (let c = 0; c < 3; c++) {
      for (let y = 0; y < CROP; y++) {
        for (let z = 0; z < CROP; z++) {
          const i = ((n * 3 + c) * CROP + y) * CROP + z;
          x[i] = fixture.raw[i] - model.mean[((y + off) * S + z + off) * 3 + c];
        }
      }
    }
  }
  const logits = await model.net.predict(x);
  const d = relative(logits, fixture.torchLogits);
  t.log(`logits of ${N} random raw images: max |ours - torchvision| ${d.abs.toExponential(2)}, relative ${d.rel.toExponential(2)} (logits up to ${(d.abs / d.rel).toFixed(2)})`);
  t.true(d.rel <= TOL, `relative ${d.rel}`);
});

test.serial('alexnet classify and serve on JPEGs give torchvision\'s probabilities (its own PIL preprocessing) within 1e-4', async (t) => {
  const r = alexnet('classify', ...fixture.jpegs, '--store', fixture.store, '--run', 'tv', '--top', '1000');
  t.is(r.status, 0, r.stderr);
  const ours = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { image: string; top: { class: string; name: string; probability: number }[] });
  const theirs = torchvisionProbabilities(fixture.jpegs);
  const names = JSON.parse(fs.readFileSync(path.join(fixture.store, 'datasets', 'imagenet-torchvision', 'names.json'), 'utf8')) as string[];
  const asVector = (top: { name: string; probability: number }[]) => {
    const p = new Float64Array(1000);
    for (const e of top) p[names.indexOf(e.name)] = e.probability;
    return p;
  };
  let worst = { abs: 0, rel: 0 };
  ours.forEach((o, i) => {
    t.is(o.top.length, 1000);
    const best = theirs[i].indexOf(Math.max(...theirs[i]));
    t.is(o.top[0].name, names[best], `${o.image}: torchvision's top-1`);
    const d = relative(asVector(o.top), theirs[i]);
    if (d.rel > worst.rel) worst = d;
  });
  t.log(`classify, ${ours.length} JPEGs (256x256, 320x256, 256x288), all 1000 probabilities: max abs ${worst.abs.toExponential(2)}, relative ${worst.rel.toExponential(2)}`);
  t.true(worst.rel <= TOL, `relative ${worst.rel}`);

  // serve: the same model over HTTP.
  const child = spawn(process.execPath, [CLI, 'serve', '--store', fixture.store, '--run', 'tv', '--port', '0', '--reload-seconds', '0'], { stdio: ['ignore', 'ignore', 'pipe'] });
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  let err = '';
  child.stderr.on('data', (b: Buffer) => { err += b.toString(); });
  const end = Date.now() + 60_000;
  while (!/serving run tv: /.test(err)) {
    if (Date.now() > end || child.exitCode !== null) return t.fail(`alexnet serve did not start:\n${err}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const url = /listening on (http:\/\/\S+)/.exec(err)![1];
  const answer = await fetch(`${url}/v1/classify?top=1000`, { method: 'POST', body: fs.readFileSync(fixture.jpegs[1]) });
  t.is(answer.status, 200);
  const served = (await answer.json()) as { top: { name: string; probability: number }[] };
  const d = relative(asVector(served.top), theirs[1]);
  t.log(`serve, ${path.basename(fixture.jpegs[1])}: relative ${d.rel.toExponential(2)}`);
  t.true(d.rel <= TOL);
  child.kill('SIGTERM');
});

test.serial('a photo whose shorter side is resized: sharp\'s linear kernel against PIL\'s bilinear (reported, the top-1 agrees)', async (t) => {
  const file = path.join(fixture.dir, 'photo-600x400.jpg');
  await writeJpeg(file, 600, 400, 4);
  const r = alexnet('classify', file, '--store', fixture.store, '--run', 'tv', '--top', '1000');
  t.is(r.status, 0, r.stderr);
  const ours = lastJsonLine<{ top: { name: string; probability: number }[] }>(r.stdout).top;
  const [theirs] = torchvisionProbabilities([file]);
  const names = JSON.parse(fs.readFileSync(path.join(fixture.store, 'datasets', 'imagenet-torchvision', 'names.json'), 'utf8')) as string[];
  const p = new Float64Array(1000);
  for (const e of ours) p[names.indexOf(e.name)] = e.probability;
  const d = relative(p, theirs);
  t.log(`600x400 JPEG resized to 384x256: relative ${d.rel.toExponential(2)} (resize kernels differ; not a parity figure)`);
  t.is(ours[0].name, names[theirs.indexOf(Math.max(...theirs))]);
});

test.serial('import from .safetensors gives the same checkpoint tensors as from .pth, bit for bit; the dataset record is reused', (t) => {
  const r = alexnet('import-weights', 'torchvision', path.join(fixture.dir, 'tv.safetensors'), '--store', fixture.store, '--run', 'tv-st');
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /as run tv-st .*dataset 'imagenet-torchvision' \(reused\)/);
  const state = (run: string) => decodeState(fs.readFileSync(path.join(fixture.store, runKeys(run).checkpoint(0, 0, 0))), run);
  const [a, b] = [state('tv'), state('tv-st')];
  t.is(a.config?.name, 'torchvision-alexnet');
  const params = [...a.tensors.keys()].filter((k) => !k.startsWith('momentum.') && k !== 'rng.state');
  t.is(params.length, 16);
  for (const k of params) t.true(tensorBytes(a, k).equals(tensorBytes(b, k)), k);
});

test.serial('a missing tensor, a wrong shape, another class count, an extra tensor, a pickled module and an existing run are refused by name, nothing written', (t) => {
  const good = decodeSafetensors(fs.readFileSync(path.join(fixture.dir, 'tv.safetensors')));
  const variant = (name: string, edit: (tensors: Record<string, Tensor>) => void) => {
    const tensors: Record<string, Tensor> = {};
    for (const [k, v] of good.tensors) tensors[k] = tensor('F32', v.shape, v.data as Float32Array);
    edit(tensors);
    const file = path.join(fixture.dir, `${name}.safetensors`);
    fs.writeFileSync(file, encodeSafetensors(tensors));
    return file;
  };
  const refused = (file: string, run: string, message: RegExp) => {
    const r = alexnet('import-weights', 'torchvision', file, '--store', fixture.store, '--run', run);
    t.is(r.status, 1, r.stderr);
    t.regex(r.stderr, message);
    t.false(fs.existsSync(path.join(fixture.store, runKeys(run).root)), `${run}: nothing written`);
    return r.stderr.trim();
  };
  const missing = refused(variant('missing', (x) => delete x['classifier.6.bias']), 'bad-missing',
    /has no tensor 'classifier\.6\.bias' \(torchvision's AlexNet has it as float32 \[1000\]; it becomes our fc8\.bias\)/);
  const shape = refused(variant('grey', (x) => { x['features.0.weight'] = tensor('F32', [64, 1, 11, 11], new Float32Array(64 * 121)); }), 'bad-shape',
    /tensor 'features\.0\.weight' is F32 \[64,1,11,11\] but torchvision's AlexNet has F32 \[64,3,11,11\] there \(our conv1\.weight\)/);
  const classes = refused(path.join(fixture.dir, 'tv-10-classes.pth'), 'bad-classes',
    /tensor 'classifier\.6\.weight' is F32 \[10,4096\] .*a classifier for 10 classes/);
  const extra = refused(variant('extra', (x) => { x['features.1.weight'] = tensor('F32', [1], new Float32Array(1)); }), 'bad-extra',
    /has tensors torchvision's AlexNet does not: features\.1\.weight/);
  const pickle = refused(path.join(fixture.dir, 'module.pth'), 'bad-pickle',
    /module\.pth is not a state dict that torch\.load reads with weights_only=True \(Unsupported class torch\.nn\.modules\.linear\.Linear\)/);
  const exists = alexnet('import-weights', 'torchvision', path.join(fixture.dir, 'tv.safetensors'), '--store', fixture.store, '--run', 'tv');
  t.is(exists.status, 1);
  t.regex(exists.stderr, /run 'tv' already exists in .*choose another --run/);
  const source = alexnet('import-weights', 'resnet', path.join(fixture.dir, 'tv.pth'), '--store', fixture.store, '--run', 'x');
  t.is(source.status, 2);
  t.regex(source.stderr, /unknown source 'resnet': expected torchvision/);
  t.log([missing, shape, classes, extra, pickle, exists.stderr.trim()].join('\n'));
});

test.serial('alexnet export --onnx of the imported run: onnxruntime on raw crops (the mean in the graph) gives torchvision\'s logits within 1e-4', async (t) => {
  const out = path.join(fixture.dir, 'tv.onnx');
  const r = alexnet('export', '--onnx', out, '--store', fixture.store, '--run', 'tv');
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /torchvision-alexnet, 1000 classes, input \[N,3,224,224\], mean of dataset 'imagenet-torchvision' subtracted in the graph/);
  const session = await ort.InferenceSession.create(out);
  try {
    const result = await session.run({ images: new ort.Tensor('float32', fixture.raw, [N, 3, CROP, CROP]) });
    const d = relative(result.logits.data as Float32Array, fixture.torchLogits);
    t.log(`onnxruntime vs torchvision, ${N} raw images: max abs ${d.abs.toExponential(2)}, relative ${d.rel.toExponential(2)}`);
    t.true(d.rel <= TOL, `relative ${d.rel}`);
  } finally {
    await session.release();
  }
});

test.serial('alexnet step --model torchvision-alexnet --weights CHECKPOINT matches torch_step.py (logits, loss, fc layers 1e-4; conv layers 1e-2, as test/parity.test.ts)', (t) => {
  const W = path.join(fixture.store, runKeys('tv').checkpoint(0, 0, 0));
  const [X, O, R] = ['X', 'O', 'R'].map((n) => path.join(fixture.dir, `step-${n}.safetensors`));
  const { images, labels } = makeBatch(2, 3 * CROP * CROP, 1000, 3);
  fs.writeFileSync(X, encodeSafetensors({ images: tensor('F32', [2, 3, CROP, CROP], images), labels: tensor('I32', [2], labels) }));
  const r = alexnet('step', '--model', 'torchvision-alexnet', '--weights', W, '--input', X, '--out', O, '--lr', '0.01');
  t.is(r.status, 0, r.stderr);
  const out = decodeSafetensors(fs.readFileSync(O));
  t.deepEqual([out.tensors.get('mask.conv5')?.shape, out.tensors.get('mask.fc6')?.shape], [[2, 9216], [2, 4096]], 'dropout before fc6 and before fc7');
  const ref = runPython('torch_step.py', ['--weights', W, '--input', X, '--lr', '0.01', '--out', R, '--masks', O]);
  t.is(ref.status, 0, ref.stderr);
  const compare = (tol: number, names?: string[]) => {
    const c = runPython('compare_tensors.py', [O, R, '--tol', String(tol), ...(names ? ['--names', names.join(',')] : [])]);
    const result = lastJsonLine<{ ok: boolean; tensors: Record<string, { rel: number }>; missing: string[] }>(c.stdout);
    const [name, { rel }] = Object.entries(result.tensors).sort((a, b) => b[1].rel - a[1].rel)[0];
    return { ...result, worst: `${name} rel ${rel.toExponential(2)}`, count: Object.keys(result.tensors).length };
  };
  const fc = compare(TOL, ['logits', 'loss', ...['fc6', 'fc7', 'fc8'].flatMap((l) => ['weight', 'bias'].flatMap((k) => [`grad.${l}.${k}`, `${l}.${k}`]))]);
  t.true(fc.ok, fc.worst);
  const all = compare(1e-2);
  t.true(all.ok, all.worst);
  t.deepEqual(all.missing, []);
  t.true(all.count >= 2 + 16 + 16);
  t.log(`logits, loss, fc: worst ${fc.worst}; all ${all.count} tensors: worst ${all.worst}`);
});

test.serial('fine-tuning\'s start: initRun from the imported run with 10 classes keeps conv1..fc7 (conv1 folded) and draws fc8 afresh', async (t) => {
  const result = await initRun({ runId: 'tv-ft', store: fixture.store, model: 'torchvision-alexnet', classes: 10, seed: 3, datasetName: 'imagenet-torchvision', initFrom: { run: 'tv' } });
  t.false(result.resumed);
  const state = (run: string) => decodeState(fs.readFileSync(path.join(fixture.store, runKeys(run).checkpoint(0, 0, 0))), run);
  const [source, tuned] = [state('tv'), state('tv-ft')];
  t.is(tuned.config?.name, 'torchvision-alexnet');
  t.is(tuned.config?.classes, 10);
  for (const layer of ['conv1', 'conv5', 'fc7']) t.true(tensorBytes(tuned, `${layer}.weight`).equals(tensorBytes(source, `${layer}.weight`)), layer);
  t.deepEqual(tuned.tensors.get('fc8.weight')!.shape, [10, 4096]);
  const record = JSON.parse(fs.readFileSync(path.join(fixture.store, runKeys('tv-ft').record), 'utf8')) as { initFrom: { reinit: string[] } };
  t.deepEqual(record.initFrom.reinit, ['fc8']);
});
