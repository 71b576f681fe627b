// Image features and retrieval (DeCAF; the paper's Figure 4) on a trained alexnet-32 run
// through the dev server: Network.features against a network cut after the layer;
// ClassifyImages with features writing an index beside its parts (bad files reported, not
// fatal); `alexnet embed` against an independent forward; `alexnet neighbours` ranking the
// index, itself first; and the refusals.
import test from 'ava';
import { execFile } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { promisify } from 'util';

import type { PartLine } from '../activities/classify-shard';
import { classifyImages } from '../activities/classify';
import { decodeToRgb } from '../activities/decode-image';
import { decodeFeatures, type FeaturesFile } from '../activities/features';
import { loadInferenceModel, type InferenceModel } from '../activities/model';
import { compareKeys, openStore } from '../activities/store';
import type { ClassifyImagesInput, ClassifyImagesResult } from '../common/contract';
import { predictionKeys } from '../common/store-layout';
import { augmentCenter } from '../native/augment';
import { featureLayer, modelConfig, Network, type LinearLayer, type NetConfig } from '../native/index';
import { CLI } from './helpers';
import { startTrainingFixture, TrainingFixture } from './temporal-helpers';

const QUEUE = 'features-test';
const RUN = 'features-run';
const GOOD = 24;            // real test JPEGs in the source
const SHARD = 10;           // 26 listed: 3 shards
const INDEX = 'predictions/fm-index/';
const execNode = promisify(execFile);
let fixture: TrainingFixture;
let store: string;
let source: string;
let goodKeys: string[];     // the source's readable images, key order
let index: ClassifyImagesResult;
let model: InferenceModel;

test.before(async () => {
  fixture = await startTrainingFixture('alexnet-features-', QUEUE, { images: 200 });
  store = fixture.store;
  await fixture.client.workflow.execute('TrainAlexNet', {
    taskQueue: QUEUE, workflowId: RUN,
    args: [{ store, datasetName: 'fashion', model: 'alexnet-32', epochs: 1, batchSize: 16, checkpointEvery: 10, lrPolicy: { type: 'fixed', lr: 0.01 }, seed: 3 }],
  });
  // Real test JPEGs, half of them two folders down, and two files that are no images.
  source = path.join(fixture.dir, 'to-index');
  const testDir = path.join(fixture.dataset, 'test');
  const jpegs = fs.readdirSync(testDir, { recursive: true }).map(String).filter((f) => f.endsWith('.jpg')).sort().slice(0, GOOD);
  jpegs.forEach((f, i) => {
    const to = path.join(source, i % 2 ? path.join('deep', path.dirname(f)) : '', path.basename(f));
    fs.mkdirSync(path.dirname(to), { recursive: true });
    fs.copyFileSync(path.join(testDir, f), to);
  });
  fs.mkdirSync(path.join(source, 'bad'));
  fs.writeFileSync(path.join(source, 'bad', 'empty.jpg'), '');
  fs.writeFileSync(path.join(source, 'bad', 'notes.jpg'), 'these are notes, not a picture\n');
  goodKeys = (fs.readdirSync(source, { recursive: true }) as string[]).map((f) => f.split(path.sep).join('/'))
    .filter((k) => k.endsWith('.jpg') && !k.startsWith('bad/')).sort(compareKeys);
  model = await loadInferenceModel({ store, run: RUN });
});

test.after.always(async () => {
  await fixture?.stop();
});

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let worst = a.length === b.length ? 0 : Infinity;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
};

// The independent reference for a layer's features: a network cut right after the linear
// layer (it is then the classifier: its logits are the layer's pre-activations), the same
// weights, through the ordinary predict; the ReLU applied here.
async function cutNetworkFeatures(net: Network, layer: string, images: Float32Array): Promise<Float32Array> {
  const at = net.config.layers.findIndex((l) => 'name' in l && l.name === layer);
  const out = (net.config.layers[at] as LinearLayer).out;
  const cut: NetConfig = { ...net.config, classes: out, layers: net.config.layers.slice(0, at + 1) };
  const reference = new Network(cut, { init: false });
  for (const p of reference.params) reference.weight(p.name).set(net.weight(p.name));
  return (await reference.predict(images)).map((v) => Math.max(0, v));
}

// The network's input for image files, as classification preprocesses them.
async function centreCrops(files: string[]): Promise<Float32Array> {
  const S = model.imageSize;
  const pixels = new Uint8Array(files.length * S * S * 3);
  for (const [i, f] of files.entries()) pixels.set((await decodeToRgb(fs.readFileSync(f), S, undefined, model.resizeKernel)).pixels, i * S * S * 3);
  return augmentCenter(pixels, files.length, S, model.crop, { mean: model.mean });
}

async function readIndex(output: string, parts: number): Promise<FeaturesFile[]> {
  const s = openStore(store);
  const files: FeaturesFile[] = [];
  for (let i = 0; i < parts; i++) files.push(decodeFeatures(await s.get(predictionKeys(output).features(i)), `features ${i}`));
  return files;
}

test.serial('Network.features: fc7 and fc6 are the post-ReLU outputs of a network cut after them, in the same forward as the logits', async (t) => {
  const net = new Network(modelConfig('alexnet-32'), { seed: 7 });
  const images = Float32Array.from({ length: 5 * net.inputSize }, (_, i) => Math.sin(i * 0.37) * 60);
  for (const layer of ['fc7', 'fc6']) {
    const { logits, features, size } = await net.features(images, layer);
    t.is(size, 512);
    t.is(featureLayer(net.config, layer), net.config.layers.findIndex((l) => 'name' in l && l.name === layer) + 1, 'the ReLU after the layer');
    t.true(features.some((v) => v === 0) && features.every((v) => v >= 0), 'post-ReLU: zeros, nothing negative');
    t.deepEqual(logits, await net.predict(images), 'the logits of the same forward');
    const worst = maxAbsDiff(features, await cutNetworkFeatures(net, layer, images));
    t.true(worst <= 1e-5, `${layer}: max |diff| ${worst}`);
  }
  const err = await t.throwsAsync(net.features(images, 'fc9'));
  t.regex(err!.message, /Expected a named layer of the network \(conv1, .*fc8\) for layer but received "fc9"/);
});

test.serial('ClassifyImages with features: an index of every readable image beside its parts; bad files reported, not fatal; the same predictions', async (t) => {
  const input: ClassifyImagesInput = { store, checkpoint: { run: RUN }, source, output: INDEX, topK: 10, shardSize: SHARD, maxParallel: 2, features: 'fc7' };
  index = await fixture.client.workflow.execute('ClassifyImages', { taskQueue: QUEUE, workflowId: 'features-index', args: [input] }) as ClassifyImagesResult;
  t.like(index, { listed: GOOD + 2, images: GOOD, skipped: 2, parts: 3, output: INDEX, features: { layer: 'fc7', vectors: GOOD, dimensions: 512 } });
  t.deepEqual(index.skippedFiles.map((f) => f.key), ['bad/empty.jpg', 'bad/notes.jpg'], 'the bad files are reported in the summary');
  const s = openStore(store);
  const files = await readIndex(INDEX, index.parts);
  const lines: PartLine[] = [];
  for (let i = 0; i < index.parts; i++) {
    const part = (await s.get(predictionKeys(INDEX).part(i))).toString('utf8').split('\n').filter((l) => l).map((l) => JSON.parse(l) as PartLine);
    lines.push(...part);
    t.deepEqual(files[i].keys, part.filter((l) => 'top' in l).map((l) => l.key), `features-${i}: the part's classified images, in order`);
    t.like(files[i], { layer: 'fc7', checkpoint: index.checkpoint, runId: RUN, dimensions: 512 });
    t.is(files[i].vectors.length, files[i].keys.length * 512);
  }
  t.deepEqual(files.flatMap((f) => f.keys), goodKeys, 'every readable image once; the bad ones in no features file');
  // One forward gives both: the predictions are those of classification without features.
  const plain = await classifyImages(model, lines.map((l) => ({ image: l.key, data: fs.readFileSync(path.join(source, l.key)) })), { topK: 10 });
  let worst = 0;
  plain.forEach((p, i) => {
    const line = lines[i];
    t.is('error' in p, !('top' in line), p.image);
    if ('error' in p || !('top' in line)) return;
    t.deepEqual(line.top.map((c) => c.class), p.top.map((c) => c.class), p.image);
    worst = Math.max(worst, maxAbsDiff(line.top.map((c) => c.probability), p.top.map((c) => c.probability)));
  });
  t.true(worst <= 1e-6, `probabilities as without features (max |dp| ${worst})`);
});

test.serial('alexnet embed: the forward\'s fc7 activations within 1e-5, the index\'s vectors, and --out; a bad file is reported', async (t) => {
  const keys = goodKeys.slice(0, 5);
  const files = keys.map((k) => path.join(source, k));
  const bad = path.join(source, 'bad', 'notes.jpg');
  const run = await t.throwsAsync(execNode(process.execPath, [CLI, 'embed', ...files, bad, '--store', store, '--run', RUN], { encoding: 'utf8', maxBuffer: 64 << 20 })) as Error & { code: number; stdout: string };
  t.is(run.code, 1, 'exit 1: one file refused');
  const out = run.stdout.trim().split('\n').map((l) => JSON.parse(l) as { file: string; layer?: string; vector?: number[]; error?: string });
  t.deepEqual(out.map((o) => o.file), [...files, bad]);
  t.regex(out[5].error!, /not an image/);
  const vectors = out.slice(0, 5).map((o) => Float32Array.from(o.vector!));
  t.true(out.slice(0, 5).every((o) => o.layer === 'fc7' && o.vector!.length === 512));
  // The reference: the checkpoint's weights in a network cut after fc7, on the images
  // preprocessed here.
  const reference = await cutNetworkFeatures(model.net, 'fc7', await centreCrops(files));
  const worst = Math.max(...vectors.map((v, i) => maxAbsDiff(v, reference.subarray(i * 512, (i + 1) * 512))));
  t.true(worst <= 1e-5, `embed against the cut network's fc7 + ReLU: max |diff| ${worst}`);
  t.log(`embed vs the forward's fc7 (post-ReLU), 5 images x 512: max |diff| ${worst.toExponential(2)}, values up to ${Math.max(...reference).toFixed(3)}`);
  const indexed = new Map((await readIndex(INDEX, index.parts)).flatMap((f) => f.keys.map((k, r) => [k, f.vectors.subarray(r * 512, (r + 1) * 512)] as const)));
  const againstIndex = Math.max(...keys.map((k, i) => maxAbsDiff(vectors[i], indexed.get(k)!)));
  t.true(againstIndex <= 1e-5, `embed against the index's vectors: max |diff| ${againstIndex}`);

  const file = path.join(fixture.dir, 'embedded.safetensors');
  const { stdout } = await execNode(process.execPath, [CLI, 'embed', ...files, '--store', store, '--run', RUN, '--layer', 'fc6', '--out', file], { encoding: 'utf8' });
  t.deepEqual(JSON.parse(stdout.trim()), { out: file, layer: 'fc6', vectors: 5, dimensions: 512 });
  const written = decodeFeatures(fs.readFileSync(file), file);
  t.like(written, { layer: 'fc6', checkpoint: index.checkpoint, runId: RUN, keys: files });
  const fc6 = await cutNetworkFeatures(model.net, 'fc6', await centreCrops(files));
  t.true(maxAbsDiff(written.vectors, fc6) <= 1e-5, 'fc6 too');
});

test.serial('alexnet neighbours: an indexed image\'s nearest neighbour is itself at distance 0, the ranking brute force\'s; a bad query is reported', async (t) => {
  const queries = [goodKeys[0], goodKeys[7], goodKeys[GOOD - 1]];
  const bad = path.join(source, 'bad', 'empty.jpg');
  const args = [CLI, 'neighbours', ...queries.map((k) => path.join(source, k)), bad, '--index', INDEX, '--store', store, '--run', RUN, '-k', '6'];
  const run = await t.throwsAsync(execNode(process.execPath, args, { encoding: 'utf8' })) as Error & { code: number; stdout: string };
  t.is(run.code, 1, 'exit 1: one query refused');
  const out = run.stdout.trim().split('\n').map((l) => JSON.parse(l) as { file: string; neighbours?: { key: string; distance: number }[]; error?: string });
  t.is(out.length, 4);
  t.regex(out[3].error!, /empty file/);
  // The reference ranking: every indexed vector against the query's own indexed vector.
  const files = await readIndex(INDEX, index.parts);
  const all = files.flatMap((f) => f.keys.map((k, r) => ({ key: k, v: f.vectors.subarray(r * 512, (r + 1) * 512) })));
  queries.forEach((key, qi) => {
    const got = out[qi].neighbours!;
    t.is(out[qi].file, path.join(source, key));
    t.is(got.length, 6);
    t.is(got[0].key, key, 'its nearest neighbour is itself');
    t.true(got[0].distance <= 1e-4, `at distance ${got[0].distance}`);
    t.true(got.every((n, i) => i === 0 || n.distance >= got[i - 1].distance), 'nearest first');
    const q = all.find((a) => a.key === key)!.v;
    const ranked = all.map((a) => ({ key: a.key, distance: Math.hypot(...Array.from(a.v, (x, d) => x - q[d])) })).sort((a, b) => a.distance - b.distance);
    t.deepEqual(got.map((n) => n.key), ranked.slice(0, 6).map((n) => n.key), `${key}: brute force's order`);
    t.true(maxAbsDiff(got.map((n) => n.distance), ranked.slice(0, 6).map((n) => n.distance)) <= 1e-4);
    t.true(got[1].distance > 1e-2, 'another image is further away');
  });
  t.log(`self-distances: ${queries.map((_, i) => out[i].neighbours![0].distance.toExponential(2)).join(', ')}; next nearest ${out[0].neighbours![1].distance.toFixed(3)}`);
});

test.serial('alexnet neighbours: refuses another run, layer or checkpoint than the index\'s, and a prefix without features', async (t) => {
  const query = path.join(source, goodKeys[0]);
  const fails = async (extra: string[]) => {
    const err = await t.throwsAsync(execNode(process.execPath, [CLI, 'neighbours', query, '--store', store, ...extra], { encoding: 'utf8' })) as Error & { code: number; stderr: string };
    t.is(err.code, 1);
    return err.stderr;
  };
  t.regex(await fails(['--index', INDEX, '--run', RUN, '--layer', 'fc6']), /built with run features-run's checkpoint .* layer fc7: its vectors are not comparable with fc6 features \(query with --layer fc7\)/);
  t.regex(await fails(['--index', INDEX, '--run', 'another-run']), /not comparable with run another-run's \(query with --run features-run\)/);
  t.regex(await fails(['--index', INDEX, '--checkpoint', 'runs/features-run/checkpoints/00000-0000000-0.safetensors']), /not comparable with checkpoint/);
  t.regex(await fails(['--index', 'predictions/nothing-here/', '--run', RUN]), /is no index: it has no summary\.json/);
  // A prefix indexed, then classified again without features: its features files go.
  const small = path.join(fixture.dir, 'small');
  fs.mkdirSync(small);
  for (const k of goodKeys.slice(0, 3)) fs.copyFileSync(path.join(source, k), path.join(small, path.basename(k)));
  const base: ClassifyImagesInput = { store, checkpoint: { run: RUN }, source: small, output: 'predictions/again/', shardSize: 2 };
  const first = await fixture.client.workflow.execute('ClassifyImages', { taskQueue: QUEUE, workflowId: 'features-again-1', args: [{ ...base, features: 'fc7' }] }) as ClassifyImagesResult;
  t.like(first.features, { vectors: 3 });
  const second = await fixture.client.workflow.execute('ClassifyImages', { taskQueue: QUEUE, workflowId: 'features-again-2', args: [base] }) as ClassifyImagesResult;
  t.is(second.features, undefined);
  const left: string[] = [];
  for await (const o of openStore(store).list('predictions/again/')) left.push(o.key);
  t.false(left.some((k) => k.includes('features-')), `no features file left: ${left.join(', ')}`);
  t.regex(await fails(['--index', 'predictions/again/', '--run', RUN]), /is no index: its job classified without features/);
  const crops = await t.throwsAsync(fixture.client.workflow.execute('ClassifyImages', { taskQueue: QUEUE, workflowId: 'features-crops', args: [{ ...base, crops: 10, features: 'fc7' }] }));
  t.regex((crops as Error & { cause: Error }).cause.message, /Expected crops 1 with features/);
  const layer = await t.throwsAsync(fixture.client.workflow.execute('ClassifyImages', { taskQueue: QUEUE, workflowId: 'features-layer', args: [{ ...base, features: 'fc8' as 'fc7' }] }));
  t.regex((layer as Error & { cause: Error }).cause.message, /Expected one of "fc7", "fc6" for features but received "fc8"/);
});
