// alexnet serve: a trained run's model over HTTP in this process (startServer on port 0)
// and through the CLI. /v1/classify, KServe v2 (image files and FP32 tensors) and TorchServe
// answers equal classifyImages in-process, unreadable images and malformed tensors are
// refused naming what is wrong, bodies over --max-body are 413 and images beyond
// --max-queue 503 with Retry-After, requests batch dynamically, a changed serving.json is
// swapped in by a reload (requests accepted before it answered by the old model), /metrics
// is valid Prometheus text (prom-client), and SIGHUP/SIGTERM work on the CLI process.
import test from 'ava';
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as http from 'http';
import * as path from 'path';
import sharp from 'sharp';

import { classifyImages } from '../activities/classify';
import { decodeToRgb } from '../activities/decode-image';
import { loadInferenceModel, type InferenceModel } from '../activities/model';
import { openStore } from '../activities/store';
import type { TrainResult } from '../common/contract';
import { runKeys } from '../common/store-layout';
import { Batcher } from '../scripts/serve/batcher';
import { histogramStats, metricValue } from '../scripts/serve/metrics';
import { startServer, type ServerHandle } from '../scripts/serve/server';
import { CLI } from './helpers';
import { startTrainingFixture, TrainingFixture } from './temporal-helpers';

const QUEUE = 'serve-test';
const RUN = 'serve-run';
let fixture: TrainingFixture;
let trained: TrainResult & { latestCheckpoint: string };
let server: ServerHandle;
const logs: string[] = [];
let jpegs: string[];       // real test-split JPEGs
let corrupt: Buffer;       // a truncated one

type Json = Record<string, unknown>;
interface InferOutput { name: string; datatype: string; shape: number[]; data: (string | number)[] }
interface InferAnswer { model_name: string; model_version: string; id?: string; outputs: InferOutput[] }
interface Metadata { name: string; versions: string[]; platform: string; inputs: Json[]; outputs: Json[]; parameters: Json }

async function call(url: string, init?: RequestInit): Promise<{ status: number; body: unknown; text: string; headers: Headers }> {
  const res = await fetch(url, init);
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: res.status, body, text, headers: res.headers };
}

const infer = (base: string, data: string[], extra: Json = {}, model = 'alexnet') => call(`${base}/v2/models/${model}/infer`, {
  method: 'POST', headers: { 'Content-Type': 'application/json' },
  body: JSON.stringify({ inputs: [{ name: 'image', datatype: 'BYTES', shape: [data.length], data }], ...extra }),
});

const predict = (base: string, image: Buffer, query = '') => call(`${base}/predictions/alexnet${query}`, { method: 'POST', body: image });

const classifyRoute = (base: string, image: Buffer, query = '', type = 'image/jpeg') =>
  call(`${base}/v1/classify${query}`, { method: 'POST', body: image, headers: { 'Content-Type': type } });

const inferTensor = (base: string, shape: number[], data: unknown, datatype = 'FP32', name = 'images', extra: Json = {}) => call(`${base}/v2/models/alexnet/infer`, {
  method: 'POST', headers: { 'Content-Type': 'application/json' },
  body: JSON.stringify({ inputs: [{ name, datatype, shape, data }], ...extra }),
});

// An image as the standard KServe input: the central crop x crop patch of the image resized
// and centre-cropped to SxS (the server's own decode), RGB 0..255, CHW.
async function cropTensor(model: InferenceModel, file: Buffer): Promise<number[]> {
  const S = model.imageSize, C = model.crop, offset = Math.floor((S - C) / 2);
  const { pixels } = await decodeToRgb(file, S, undefined, model.resizeKernel);
  const out = new Array<number>(3 * C * C);
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < C; y++) {
      for (let x = 0; x < C; x++) out[(c * C + y) * C + x] = pixels[((offset + y) * S + offset + x) * 3 + c];
    }
  }
  return out;
}

// Every class's probability of each image, in class-index order, as classifyImages gives it.
async function referenceProbabilities(model: InferenceModel, files: Buffer[], crops: 1 | 10 = 1): Promise<number[][]> {
  const K = model.classIds.length;
  const answers = await classifyImages(model, files.map((data, i) => ({ image: String(i), data })), { topK: K, crops });
  return answers.map((a) => {
    if (!('top' in a)) throw new Error(a.error);
    const row = new Array<number>(K).fill(NaN);
    for (const p of a.top) row[model.classIds.indexOf(p.class)] = p.probability;
    return row;
  });
}

// Keeps a model's network busy (its calls queue) for about a second: batches accepted
// meanwhile wait behind it, so the queue fills deterministically.
const occupy = (model: InferenceModel) => model.net.predict(new Float32Array(1024 * model.net.inputSize));

// A POST whose body is only partly sent until release(): in flight on the server meanwhile.
function heldRequest(base: string, route: string, body: Buffer): { release: () => Promise<{ status: number; body: unknown }> } {
  const url = new URL(route, base);
  let req!: http.ClientRequest;
  const response = new Promise<{ status: number; body: unknown }>((resolve, reject) => {
    req = http.request({ host: url.hostname, port: url.port, path: url.pathname + url.search, method: 'POST', headers: { 'Content-Length': body.length, 'Content-Type': 'image/jpeg' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
  response.catch(() => undefined);  // a test that fails before release() leaves it hanging up
  req.write(body.subarray(0, 10));
  return {
    release: () => {
      req.end(body.subarray(10));
      return response;
    },
  };
}

const inflightOf = async (s: ServerHandle) => (await metricValue(s.metrics.inflight)) ?? 0;

const output = (a: InferAnswer, name: string) => a.outputs.find((o) => o.name === name)!;

// The Prometheus text exposition format (0.0.4), strictly: # HELP/# TYPE before a family's
// samples, each family once, sample lines `name{label="value",...} value`, empty lines
// ignored, histograms with cumulative buckets ending in le="+Inf" equal to _count.
interface Sample { name: string; labels: Record<string, string>; value: number }
function parsePrometheus(text: string): Map<string, { type: string; help: string; samples: Sample[] }> {
  if (!text.endsWith('\n')) throw new Error('the exposition must end with a newline');
  const families = new Map<string, { type: string; help: string; samples: Sample[] }>();
  const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
  for (const line of text.slice(0, -1).split('\n')) {
    let m: RegExpExecArray | null;
    if (line === '') continue;
    if ((m = new RegExp(`^# HELP (${NAME}) (.*)$`).exec(line))) {
      if (families.has(m[1])) throw new Error(`family ${m[1]} twice`);
      families.set(m[1], { type: '', help: m[2], samples: [] });
    } else if ((m = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`).exec(line))) {
      const f = families.get(m[1]);
      if (!f || f.type !== '' || f.samples.length > 0) throw new Error(`TYPE of ${m[1]} out of place`);
      f.type = m[2];
    } else if ((m = new RegExp(`^(${NAME})(?:\\{(.*)\\})? (\\S+)$`).exec(line))) {
      const [, name, labelText = '', valueText] = m;
      const labels: Record<string, string> = {};
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/y;
      let at = 0;
      while (at < labelText.length) {
        re.lastIndex = at;
        const l = re.exec(labelText);
        if (!l) throw new Error(`bad labels in: ${line}`);
        labels[l[1]] = l[2].replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
        at = re.lastIndex;
      }
      // Go's ParseFloat, as Prometheus reads values: NaN and Inf in any case.
      const special: Record<string, number> = { nan: NaN, inf: Infinity, '+inf': Infinity, '-inf': -Infinity };
      const value = valueText.toLowerCase() in special ? special[valueText.toLowerCase()] : Number(valueText);
      if (Number.isNaN(value) && valueText.toLowerCase() !== 'nan') throw new Error(`bad value in: ${line}`);
      const family = families.get(name) ?? families.get(name.replace(/_(bucket|sum|count)$/, ''));
      if (!family || family.type === '') throw new Error(`sample before its family's TYPE: ${line}`);
      if (family.type !== 'histogram' && !families.has(name)) throw new Error(`${name} is not a sample name of its family`);
      family.samples.push({ name, labels, value });
    } else {
      throw new Error(`not a line of the Prometheus text format: ${JSON.stringify(line)}`);
    }
  }
  for (const [name, f] of families) {
    if (f.type !== 'histogram') continue;
    const series = new Map<string, Sample[]>();
    for (const s of f.samples) {
      const { le, ...rest } = s.labels;
      const id = JSON.stringify(rest);
      if (s.name === `${name}_bucket` && le === undefined) throw new Error(`${name}_bucket without le`);
      series.set(id, [...(series.get(id) ?? []), s]);
    }
    for (const samples of series.values()) {
      const buckets = samples.filter((s) => s.name === `${name}_bucket`);
      const count = samples.find((s) => s.name === `${name}_count`)?.value;
      if (buckets.at(-1)?.labels.le !== '+Inf' || buckets.at(-1)?.value !== count) throw new Error(`${name}: +Inf bucket missing or not equal to _count`);
      buckets.reduce((prev, b) => {
        if (b.value < prev) throw new Error(`${name}: buckets not cumulative`);
        return b.value;
      }, 0);
    }
  }
  return families;
}

async function metricsOf(base: string) {
  const res = await fetch(`${base}/metrics`);
  return { contentType: res.headers.get('content-type'), families: parsePrometheus(await res.text()) };
}

const sampleValue = (families: ReturnType<typeof parsePrometheus>, family: string, name: string, labels: Record<string, string> = {}) =>
  families.get(family)?.samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;

test.before(async () => {
  fixture = await startTrainingFixture('alexnet-serve-', QUEUE);
  trained = await fixture.client.workflow.execute('TrainAlexNet', {
    taskQueue: QUEUE, workflowId: RUN,
    args: [{ store: fixture.store, datasetName: 'fashion', model: 'alexnet-32', epochs: 1, batchSize: 16, checkpointEvery: 10, lrPolicy: { type: 'fixed', lr: 0.01 }, seed: 5 }],
  });
  const dir = path.join(fixture.dataset, 'test');
  jpegs = fs.readdirSync(dir, { recursive: true }).map(String).filter((f) => f.endsWith('.jpg')).sort().map((f) => path.join(dir, f));
  corrupt = fs.readFileSync(jpegs[0]).subarray(0, 100);
  server = await startServer({ store: fixture.store, run: RUN, port: 0, reloadSeconds: 0, log: (l) => logs.push(l) });
  await server.ready;
});

test.after.always(async () => {
  await server?.close();
  await fixture?.stop();
});

test.serial('health, readiness and model metadata name the checkpoint that serves', async (t) => {
  t.like(await call(`${server.url}/v2/health/live`), { status: 200, body: { live: true } });
  t.like(await call(`${server.url}/v2/health/ready`), { status: 200, body: { ready: true } });
  t.like(await call(`${server.url}/v2/models/alexnet/ready`), { status: 200, body: { name: 'alexnet', ready: true } });
  t.like(await call(`${server.url}/ping`), { status: 200, body: { status: 'Healthy' } });
  t.like(await call(`${server.url}/v2`), { status: 200, body: { name: 'alexnet-temporal', extensions: [] } });
  const meta = await call(`${server.url}/v2/models/alexnet`);
  t.is(meta.status, 200);
  const m = meta.body as Metadata;
  t.deepEqual(m.versions, [trained.latestCheckpoint], 'the version is the checkpoint key');
  t.is(m.platform, 'alexnet_native');
  t.deepEqual(m.inputs, [{ name: 'images', datatype: 'FP32', shape: [-1, 3, 32, 32] }, { name: 'image', datatype: 'BYTES', shape: [-1] }]);
  t.deepEqual(m.outputs, [
    { name: 'probabilities', datatype: 'FP32', shape: [-1, 10] }, { name: 'classes', datatype: 'BYTES', shape: [-1, -1] },
    { name: 'names', datatype: 'BYTES', shape: [-1, -1] }, { name: 'top', datatype: 'BYTES', shape: [-1] }, { name: 'error', datatype: 'BYTES', shape: [-1] },
  ]);
  t.like(m.parameters, { run: RUN, checkpoint: trained.latestCheckpoint, from: 'latest', dataset: 'fashion', classes: 10, image_size: 36, crop: 32, resize_kernel: 'lanczos3', crops: 1, top_k: 5, max_queue: 256 });
  const model = server.model()!;
  t.deepEqual(m.parameters.class_ids, model.classIds);
  t.deepEqual(m.parameters.class_names, model.classNames);
  t.regex(m.parameters.input as string, /"images" FP32 \[N, 3, 32, 32\]: RGB in 0\.\.255, NCHW/);
  // The version as a path segment (URL-encoded, it holds slashes).
  const versioned = await call(`${server.url}/v2/models/alexnet/versions/${encodeURIComponent(trained.latestCheckpoint)}`);
  t.is(versioned.status, 200);
  t.true(logs.some((l) => l.includes(`serving run ${RUN}: ${trained.latestCheckpoint} (newest in latest.json; nothing promoted)`)), logs.join('\n'));
});

test.serial('KServe infer: three real JPEGs get the top-k classifyImages gives in-process', async (t) => {
  const files = jpegs.slice(0, 3).map((f) => fs.readFileSync(f));
  const res = await infer(server.url, files.map((b) => b.toString('base64')), { id: 'req-1', parameters: { top_k: 3 } });
  t.is(res.status, 200, res.text);
  const a = res.body as InferAnswer;
  t.like(a, { model_name: 'alexnet', model_version: trained.latestCheckpoint, id: 'req-1' });
  t.deepEqual(a.outputs.map((o) => [o.name, o.datatype, o.shape]), [
    ['probabilities', 'FP32', [3, 10]], ['classes', 'BYTES', [3, 3]], ['names', 'BYTES', [3, 3]], ['top', 'BYTES', [3]], ['error', 'BYTES', [3]],
  ]);
  const model = await loadInferenceModel({ store: fixture.store, run: RUN });
  const reference = await classifyImages(model, files.map((data, i) => ({ image: String(i), data })), { topK: 3 });
  const classes = output(a, 'classes').data;
  const probs = output(a, 'probabilities').data as number[];
  const at = (i: number, cls: string) => probs[i * 10 + model.classIds.indexOf(cls)];
  reference.forEach((r, i) => {
    if (!('top' in r)) return t.fail(r.error);
    t.deepEqual(classes.slice(i * 3, i * 3 + 3), r.top.map((p) => p.class));
    t.deepEqual(output(a, 'names').data.slice(i * 3, i * 3 + 3), r.top.map((p) => p.name));
    r.top.forEach((p) => t.true(Math.abs(at(i, p.class) - p.probability) < 1e-6));
    t.true(Math.abs(probs.slice(i * 10, i * 10 + 10).reduce((x, y) => x + y) - 1) < 1e-6, 'every class: a distribution');
    t.deepEqual(JSON.parse(output(a, 'top').data[i] as string), { top: r.top.map((p) => ({ ...p, probability: at(i, p.class) })) });
    t.is(output(a, 'error').data[i], '');
  });
  // The outputs a request names, only; shape [N, 1] accepted; the default top_k.
  const some = await call(`${server.url}/v2/models/alexnet/infer`, {
    method: 'POST',
    body: JSON.stringify({ inputs: [{ name: 'image', datatype: 'BYTES', shape: [1, 1], data: [[files[0].toString('base64')]] }], outputs: [{ name: 'classes' }] }),
  });
  t.is(some.status, 200, some.text);
  t.deepEqual((some.body as InferAnswer).outputs.map((o) => [o.name, o.shape]), [['classes', [1, 5]]]);
});

test.serial('TorchServe /predictions: a raw JPEG as the body gets its top-k; /ping', async (t) => {
  const image = fs.readFileSync(jpegs[3]);
  const model = await loadInferenceModel({ store: fixture.store, run: RUN });
  const [reference] = await classifyImages(model, [{ image: 'x', data: image }], { topK: 5 });
  const res = await predict(server.url, image);
  t.is(res.status, 200, res.text);
  t.is(res.headers.get('x-model-version'), trained.latestCheckpoint);
  const top = res.body as { class: string; name: string; probability: number }[];
  t.deepEqual(top.map((p) => p.class), 'top' in reference ? reference.top.map((p) => p.class) : []);
  t.deepEqual(Object.keys(top[0]), ['class', 'name', 'probability']);
  const two = await call(`${server.url}/predictions/alexnet?top_k=2`, { method: 'PUT', body: image, headers: { 'Content-Type': 'image/jpeg' } });
  t.is(two.status, 200, 'PUT too (curl -T image.jpg)');
  t.deepEqual(two.body, top.slice(0, 2));
});

test.serial('POST /v1/classify: the image file as the body -> top-k (per-request top and crops), the checkpoint, the latency; PNG and WebP too', async (t) => {
  const model = server.model()!;
  const image = fs.readFileSync(jpegs[2]);
  const res = await classifyRoute(server.url, image);
  t.is(res.status, 200, res.text);
  t.is(res.headers.get('x-model-version'), trained.latestCheckpoint);
  const body = res.body as { top: { class: string; name: string; probability: number }[]; checkpoint: string; ms: number };
  t.deepEqual(Object.keys(body), ['top', 'checkpoint', 'ms']);
  t.is(body.checkpoint, trained.latestCheckpoint);
  t.true(typeof body.ms === 'number' && body.ms > 0 && body.ms < 10_000, `ms ${body.ms}`);
  t.is(body.top.length, 5, 'the default top');
  const [one] = await referenceProbabilities(model, [image], 1);
  body.top.forEach((p) => t.true(Math.abs(p.probability - one[model.classIds.indexOf(p.class)]) < 1e-6));
  t.deepEqual(body.top.map((p) => p.probability), [...body.top.map((p) => p.probability)].sort((x, y) => y - x), 'most probable first');
  // ?top=3&crops=10: the paper's ten patches, as classifyImages with crops 10.
  const ten = await classifyRoute(server.url, image, '?top=3&crops=10');
  t.is(ten.status, 200, ten.text);
  const [tenRef] = await referenceProbabilities(model, [image], 10);
  const tenTop = (ten.body as typeof body).top;
  t.is(tenTop.length, 3);
  tenTop.forEach((p) => t.true(Math.abs(p.probability - tenRef[model.classIds.indexOf(p.class)]) < 1e-6));
  t.notDeepEqual(tenTop.map((p) => p.probability), body.top.slice(0, 3).map((p) => p.probability), 'ten crops score differently');
  // Other formats sharp decodes: the same image as PNG and WebP (lossless).
  const raw = await sharp(image).png().toBuffer();
  const png = await classifyRoute(server.url, raw, '', 'image/png');
  t.is(png.status, 200, png.text);
  t.deepEqual((png.body as typeof body).top.map((p) => p.class), body.top.map((p) => p.class));
  const webp = await classifyRoute(server.url, await sharp(image).webp({ lossless: true }).toBuffer(), '?top=2', 'image/webp');
  t.is(webp.status, 200, webp.text);
  t.deepEqual((webp.body as typeof body).top.map((p) => p.class), body.top.slice(0, 2).map((p) => p.class));
  // Refusals name the problem; the server goes on.
  const cases: [Buffer, string, RegExp][] = [
    [corrupt, '', /corrupt or truncated JPEG/],
    [Buffer.from('hello, not an image'), '', /not an image/],
    [Buffer.alloc(0), '', /empty body/],
    [image, '?top=0', /top must be an integer >= 1/],
    [image, '?crops=5', /crops must be 1 \(the centre crop\) or 10/],
  ];
  for (const [bytes, query, reason] of cases) {
    const r = await classifyRoute(server.url, bytes, query);
    t.is(r.status, 400, `${query} ${r.text}`);
    t.regex((r.body as { error: string }).error, reason);
  }
  const get = await call(`${server.url}/v1/classify`);
  t.is(get.status, 405);
  t.is(get.headers.get('allow'), 'POST');
  t.is((await classifyRoute(server.url, image)).status, 200, 'still serving');
});

test.serial('KServe infer with the standard input: FP32 [N, 3, crop, crop] centre crops in 0..255 get classifyImages\' probabilities within 1e-5; flat, nested and binary data', async (t) => {
  const model = server.model()!;
  const files = jpegs.slice(4, 8).map((f) => fs.readFileSync(f));
  const tensors = await Promise.all(files.map((f) => cropTensor(model, f)));
  const reference = await referenceProbabilities(model, files, 1);
  const res = await inferTensor(server.url, [4, 3, 32, 32], tensors.flat(), 'FP32', 'images', { id: 'fp32', parameters: { top_k: 2 } });
  t.is(res.status, 200, res.text);
  const a = res.body as InferAnswer;
  t.like(a, { model_name: 'alexnet', model_version: trained.latestCheckpoint, id: 'fp32' });
  t.deepEqual(a.outputs.map((o) => [o.name, o.datatype, o.shape]), [
    ['probabilities', 'FP32', [4, 10]], ['classes', 'BYTES', [4, 2]], ['names', 'BYTES', [4, 2]], ['top', 'BYTES', [4]], ['error', 'BYTES', [4]],
  ]);
  const probs = output(a, 'probabilities').data as number[];
  let worst = 0;
  reference.forEach((row, i) => row.forEach((p, k) => { worst = Math.max(worst, Math.abs(probs[i * 10 + k] - p)); }));
  t.true(worst <= 1e-5, `max |dp| ${worst}`);
  t.log(`FP32 tensors against classifyImages on the files: max |dp| ${worst.toExponential(2)}`);
  reference.forEach((row, i) => {
    const best = row.indexOf(Math.max(...row));
    t.is(output(a, 'classes').data[i * 2], model.classIds[best]);
  });
  // Nested arrays ([N][3][C][C]), as numpy's tolist() gives: the same answer.
  const nest = (v: number[]) => Array.from({ length: 3 }, (_, c) => Array.from({ length: 32 }, (_, y) => v.slice((c * 32 + y) * 32, (c * 32 + y + 1) * 32)));
  const nested = await inferTensor(server.url, [4, 3, 32, 32], tensors.map(nest), 'FP32', 'images', { outputs: [{ name: 'probabilities' }] });
  t.is(nested.status, 200, nested.text);
  t.deepEqual(output(nested.body as InferAnswer, 'probabilities').data, probs);
  // Triton's binary tensor extension: the JSON, then raw little-endian float32.
  const blob = Buffer.from(Float32Array.from(tensors[0]).buffer);
  const header = Buffer.from(JSON.stringify({ inputs: [{ name: 'images', datatype: 'FP32', shape: [1, 3, 32, 32], parameters: { binary_data_size: blob.length } }], outputs: [{ name: 'probabilities' }] }));
  const binary = await call(`${server.url}/v2/models/alexnet/infer`, {
    method: 'POST', body: Buffer.concat([header, blob]), headers: { 'Content-Type': 'application/octet-stream', 'Inference-Header-Content-Length': String(header.length) },
  });
  t.is(binary.status, 200, binary.text);
  t.deepEqual(output(binary.body as InferAnswer, 'probabilities').data.map((p) => Number(p).toFixed(6)), probs.slice(0, 10).map((p) => p.toFixed(6)));
});

test.serial('KServe infer: a wrong input name, datatype, shape or data is 400 naming the input and what it expects', async (t) => {
  const ok = new Array<number>(3 * 32 * 32).fill(100);
  const cases: [number[], unknown, string, string, RegExp][] = [
    [[1, 3, 32, 32], ok, 'FP64', 'images', /input "images" has datatype "FP64"; expected FP32/],
    [[1, 3, 32, 32], ok, 'UINT8', 'images', /input "images" has datatype "UINT8"; expected FP32/],
    [[1, 3, 31, 32], ok, 'FP32', 'images', /input "images" has shape \[1, 3, 31, 32\]; expected \[N, 3, 32, 32\]/],
    [[1, 32, 32, 3], ok, 'FP32', 'images', /input "images" has shape \[1, 32, 32, 3\]; expected \[N, 3, 32, 32\]: N images, 3 RGB channels.*NCHW/],
    [[3072], ok, 'FP32', 'images', /input "images" has shape \[3072\]; expected \[N, 3, 32, 32\]/],
    [[2, 3, 32, 32], ok, 'FP32', 'images', /input "images" has shape \[2, 3, 32, 32\] \(6144 values\) but 3072 data elements/],
    [[1, 3, 32, 32], [...ok.slice(1), 'x'], 'FP32', 'images', /input "images" element 3071 is "x", not a number/],
    [[1, 3, 32, 32], 'not an array', 'FP32', 'images', /input "images" needs "data"/],
    [[1, 3, 32, 32], ok, 'FP32', 'pixels', /unknown input "pixels": this model takes one input: "images", datatype FP32, shape \[N, 3, 32, 32\]/],
    [[1], ['aGk='], 'FP32', 'image', /input "image" has datatype "FP32"; expected BYTES/],
  ];
  for (const [shape, data, datatype, name, reason] of cases) {
    const r = await inferTensor(server.url, shape, data, datatype, name);
    t.is(r.status, 400, `${name} ${datatype} ${JSON.stringify(shape)}: ${r.text}`);
    t.regex((r.body as { error: string }).error, reason);
  }
  const mismatch = await call(`${server.url}/v2/models/alexnet/infer`, {
    method: 'POST', body: Buffer.concat([Buffer.from('{"inputs": []}'), Buffer.alloc(8)]), headers: { 'Inference-Header-Content-Length': '999' },
  });
  t.is(mismatch.status, 400);
  t.regex((mismatch.body as { error: string }).error, /Inference-Header-Content-Length "999"/);
  t.is((await inferTensor(server.url, [1, 3, 32, 32], ok)).status, 200, 'still serving');
});

test.serial('refusals: a corrupt image is 400 with its reason; a mixed KServe batch answers the readable ones; bad requests, unknown models', async (t) => {
  const bad = await predict(server.url, corrupt);
  t.is(bad.status, 400);
  t.regex((bad.body as { error: string }).error, /corrupt or truncated JPEG/);
  t.regex(((await predict(server.url, Buffer.alloc(0))).body as { error: string }).error, /empty body/);
  const onlyBad = await infer(server.url, [corrupt.toString('base64')]);
  t.is(onlyBad.status, 400, 'no image readable: the request fails');
  t.regex((onlyBad.body as { error: string }).error, /corrupt or truncated JPEG/);
  // Mixed: 200, the readable image classified, the others' reasons in "error" and "top".
  const good = fs.readFileSync(jpegs[0]);
  const mixed = await infer(server.url, [good.toString('base64'), corrupt.toString('base64'), '%%% not base64 %%%'], { parameters: { top_k: 2 } });
  t.is(mixed.status, 200, mixed.text);
  const a = mixed.body as InferAnswer;
  const errors = output(a, 'error').data as string[];
  t.is(errors[0], '');
  t.regex(errors[1], /corrupt or truncated JPEG/);
  t.regex(errors[2], /not base64/);
  t.deepEqual(output(a, 'classes').data.slice(2), ['', '', '', ''], 'refused rows are padded with ""');
  t.deepEqual(output(a, 'probabilities').data.slice(10), new Array(20).fill(0), '... and probability 0');
  t.true(Math.max(...(output(a, 'probabilities').data.slice(0, 10) as number[])) > 0);
  t.like(JSON.parse(output(a, 'top').data[1] as string), { error: errors[1] });
  // Malformed requests.
  const post = (body: string) => call(`${server.url}/v2/models/alexnet/infer`, { method: 'POST', body });
  const cases: [string, RegExp][] = [
    ['{"inputs": [', /malformed JSON/],
    ['[]', /JSON object/],
    [JSON.stringify({ inputs: [{ name: 'image', datatype: 'FP32', shape: [1], data: [1] }] }), /input "image" has datatype "FP32"; expected BYTES/],
    [JSON.stringify({ inputs: [{ name: 'pixels', datatype: 'BYTES', shape: [1], data: ['x'] }] }), /unknown input "pixels"/],
    [JSON.stringify({ inputs: [{ name: 'image', datatype: 'BYTES', shape: [2], data: ['aGk='] }] }), /shape \[2\] but 1 data elements/],
    [JSON.stringify({ inputs: [{ name: 'image', datatype: 'BYTES', shape: [1], data: ['aGk='] }], parameters: { top_k: 0 } }), /top_k must be an integer >= 1/],
    [JSON.stringify({ inputs: [{ name: 'image', datatype: 'BYTES', shape: [1], data: ['aGk='] }], outputs: [{ name: 'logits' }] }), /unknown output "logits"/],
  ];
  for (const [body, reason] of cases) {
    const r = await post(body);
    t.is(r.status, 400, body);
    t.regex((r.body as { error: string }).error, reason);
  }
  // Unknown model, version, route; wrong method.
  for (const url of ['/v2/models/resnet', '/v2/models/resnet/ready', `/v2/models/alexnet/versions/${encodeURIComponent('runs/x/checkpoints/00001-0000000-000.safetensors')}`, '/nope']) {
    const r = await call(`${server.url}${url}`);
    t.is(r.status, 404, url);
    t.truthy((r.body as { error: string }).error);
  }
  t.regex(((await infer(server.url, ['aGk='], {}, 'resnet')).body as { error: string }).error, /unknown model 'resnet': this server serves 'alexnet'/);
  t.is((await call(`${server.url}/predictions/resnet`, { method: 'POST', body: good })).status, 404);
  const wrong = await call(`${server.url}/v2/models/alexnet/infer`);
  t.is(wrong.status, 405);
  t.is(wrong.headers.get('allow'), 'POST');
});

test.serial('dynamic batching: 8 concurrent requests while a batch runs are classified in fewer batches; latency and throughput', async (t) => {
  const batching = await startServer({ store: fixture.store, run: RUN, port: 0, reloadSeconds: 0, maxDelayMs: 50, maxBatch: 32, log: () => undefined });
  t.teardown(() => batching.close());
  await batching.ready;
  const images = jpegs.slice(0, 8).map((f) => fs.readFileSync(f));
  const busy = occupy(batching.model()!);
  const answers = await Promise.all(images.map((img) => predict(batching.url, img)));
  await busy;
  t.true(answers.every((a) => a.status === 200));
  const { count, sum } = await histogramStats(batching.metrics.batchSize);
  t.is(sum, 8);
  t.true(count < 8, `8 images in ${count} batches`);
  const { families } = await metricsOf(batching.url);
  const singles = sampleValue(families, 'alexnet_serve_batch_size', 'alexnet_serve_batch_size_bucket', { le: '1' })!;
  t.true(singles < count, `a batch of more than one image (${singles} of ${count} batches held one)`);
  // Each request got its own answer: the same as asked alone.
  const alone = (await predict(server.url, images[5])).body as { class: string; probability: number }[];
  const batched = answers[5].body as typeof alone;
  t.deepEqual(batched.map((p) => p.class), alone.map((p) => p.class));
  batched.forEach((p, i) => t.true(Math.abs(p.probability - alone[i].probability) < 1e-6, 'the same up to float rounding (batch size changes GEMM blocking)'));

  // Single-image latency (sequential, default max-delay 5 ms) and images/s under concurrency.
  const latencies: number[] = [];
  for (let i = 0; i < 20; i++) {
    const t0 = performance.now();
    t.is((await predict(server.url, images[i % 8])).status, 200);
    latencies.push(performance.now() - t0);
  }
  latencies.sort((a, b) => a - b);
  const total = 256;
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: 32 }, async () => {
    while (next < total) {
      const i = next++;
      t.is((await predict(server.url, fs.readFileSync(jpegs[i % jpegs.length]))).status, 200);
    }
  }));
  const seconds = (performance.now() - t0) / 1000;
  t.log(`single image: median ${latencies[10].toFixed(1)} ms, p90 ${latencies[18].toFixed(1)} ms; ${total} requests, 32 concurrent: ${(total / seconds).toFixed(0)} images/s`);
});

test.serial('limits: bodies over --max-body are 413 on every upload route; more images than --max-queue waiting are 503 with Retry-After; the server goes on', async (t) => {
  const s = await startServer({ store: fixture.store, run: RUN, port: 0, reloadSeconds: 0, maxBodyBytes: 100_000, maxQueue: 2, maxBatch: 1, log: () => undefined });
  t.teardown(() => s.close());
  await s.ready;
  const big = Buffer.alloc(200_000, 1);
  for (const r of [
    await classifyRoute(s.url, big), await predict(s.url, big),
    await call(`${s.url}/v2/models/alexnet/infer`, { method: 'POST', body: big }),
  ]) {
    t.is(r.status, 413);
    t.regex((r.body as { error: string }).error, /request body of 200000 bytes is over the limit of 100000 bytes \(--max-body\)/);
  }
  const image = fs.readFileSync(jpegs[0]);
  const three = await infer(s.url, [image, image, image].map((b) => b.toString('base64')));
  t.is(three.status, 413, 'more images in one request than the queue holds');
  t.regex((three.body as { error: string }).error, /3 images in one request, more than the server queues \(--max-queue 2\)/);
  // The network busy: one batch waits on it (one at a time on the CPU), two images queue,
  // the rest are refused at once.
  const busy = occupy(s.model()!);
  const answers = await Promise.all(Array.from({ length: 12 }, () => classifyRoute(s.url, image)));
  await busy;
  const refused = answers.filter((a) => a.status === 503);
  t.true(refused.length >= 6, `${refused.length} of 12 refused: ${answers.map((a) => a.status).join(' ')}`);
  t.true(answers.every((a) => a.status === 200 || a.status === 503));
  for (const r of refused) {
    t.regex(r.headers.get('retry-after') ?? '', /^[1-9]\d*$/);
    t.regex((r.body as { error: string }).error, /busy: 2 images are waiting for a batch, the most this server queues is 2 \(--max-queue\)/);
  }
  t.is((await classifyRoute(s.url, image)).status, 200, 'the queue drained: accepted again');
  const { families } = await metricsOf(s.url);
  t.is(sampleValue(families, 'alexnet_serve_requests_total', 'alexnet_serve_requests_total', { route: '/v1/classify', code: '503' }), refused.length);
  t.is(sampleValue(families, 'alexnet_serve_requests_total', 'alexnet_serve_requests_total', { route: '/v1/classify', code: '413' }), 1);
  t.is(sampleValue(families, 'alexnet_serve_queued_images', 'alexnet_serve_queued_images'), 0);
});

test.serial('/metrics is Prometheus text: requests by route and code, latency and batch histograms, images, model info, reloads', async (t) => {
  const { contentType, families } = await metricsOf(server.url);
  t.is(contentType, 'text/plain; version=0.0.4; charset=utf-8');
  for (const [name, type] of [
    ['alexnet_serve_requests_total', 'counter'], ['alexnet_serve_request_duration_seconds', 'histogram'], ['alexnet_serve_batch_size', 'histogram'],
    ['alexnet_serve_batch_duration_seconds', 'histogram'], ['alexnet_serve_images_total', 'counter'], ['alexnet_serve_model_info', 'gauge'],
    ['alexnet_serve_reloads_total', 'counter'], ['alexnet_serve_ready', 'gauge'], ['alexnet_serve_inflight_requests', 'gauge'],
    ['alexnet_serve_queued_images', 'gauge'], ['process_resident_memory_bytes', 'gauge'], ['process_start_time_seconds', 'gauge'],
  ]) t.is(families.get(name)?.type, type, name);
  t.true(sampleValue(families, 'alexnet_serve_requests_total', 'alexnet_serve_requests_total', { route: '/predictions/{name}', code: '200' })! > 0);
  t.true(sampleValue(families, 'alexnet_serve_requests_total', 'alexnet_serve_requests_total', { route: '/v1/classify', code: '200' })! > 0);
  t.true(sampleValue(families, 'alexnet_serve_requests_total', 'alexnet_serve_requests_total', { route: '/v1/classify', code: '400' })! >= 5);
  t.true(sampleValue(families, 'alexnet_serve_request_duration_seconds', 'alexnet_serve_request_duration_seconds_count', { route: '/v1/classify' })! > 0);
  t.true(sampleValue(families, 'alexnet_serve_requests_total', 'alexnet_serve_requests_total', { route: '/v2/models/{name}/infer', code: '400' })! > 0);
  t.true(sampleValue(families, 'alexnet_serve_requests_total', 'alexnet_serve_requests_total', { route: 'unmatched', code: '404' })! > 0);
  t.true(sampleValue(families, 'alexnet_serve_request_duration_seconds', 'alexnet_serve_request_duration_seconds_count', { route: '/predictions/{name}' })! > 0);
  t.true(sampleValue(families, 'alexnet_serve_images_total', 'alexnet_serve_images_total', { outcome: 'classified' })! > 0);
  t.true(sampleValue(families, 'alexnet_serve_images_total', 'alexnet_serve_images_total', { outcome: 'refused' })! >= 3);
  t.deepEqual(families.get('alexnet_serve_model_info')!.samples, [{
    name: 'alexnet_serve_model_info', labels: { model: 'alexnet', version: trained.latestCheckpoint, run: RUN, from: 'latest', dataset: 'fashion' }, value: 1,
  }]);
  t.is(sampleValue(families, 'alexnet_serve_ready', 'alexnet_serve_ready'), 1);
});

test.serial('hot reload: a new serving.json is swapped in, requests accepted before answered by the old model; a failing reload keeps serving', async (t) => {
  const store = openStore(fixture.store);
  const keys = runKeys(RUN);
  const initial = keys.checkpoint(0, 0, 0);
  t.truthy(await store.head(initial), 'the run keeps its initial checkpoint');
  t.like(await server.reload('test'), { result: 'unchanged' });
  // A request accepted before the swap (its body still arriving) is answered by the old model.
  const slow = await startServer({ store: fixture.store, run: RUN, port: 0, reloadSeconds: 0, log: (l) => logs.push(`slow: ${l}`) });
  t.teardown(() => slow.close());
  await slow.ready;
  const held = heldRequest(slow.url, '/v1/classify', fs.readFileSync(jpegs[0]));
  while ((await inflightOf(slow)) < 1) await new Promise((r) => setTimeout(r, 2));
  await store.put(keys.serving, Buffer.from(JSON.stringify({ checkpoint: initial, top1Error: 0.9, top5Error: 0.5, split: 'test', crops: 1, images: 10, report: '', evaluation: 'test', promotedAt: new Date().toISOString() })));
  const swapped = await slow.reload('test');
  t.like(swapped, { result: 'changed', checkpoint: { key: initial, from: 'serving' }, previous: { key: trained.latestCheckpoint, from: 'latest' } });
  const old = await held.release();
  t.is(old.status, 200);
  t.is((old.body as { checkpoint: string }).checkpoint, trained.latestCheckpoint, 'accepted before the swap: the old model answered');
  t.is(((await infer(slow.url, [fs.readFileSync(jpegs[0]).toString('base64')])).body as InferAnswer).model_version, initial);

  // The main server, reloaded: metadata, metrics and the log follow.
  t.like(await server.reload('test'), { result: 'changed', checkpoint: { key: initial, from: 'serving' } });
  const m = (await call(`${server.url}/v2/models/alexnet`)).body as Metadata;
  t.deepEqual(m.versions, [initial]);
  t.like(m.parameters, { from: 'serving', checkpoint: initial });
  t.true(logs.some((l) => l.startsWith(`reload (test): ${initial} (serving) replaces ${trained.latestCheckpoint} (latest)`)), logs.join('\n'));
  t.true(logs.some((l) => l.includes(`serving run ${RUN}: ${initial} (promoted in serving.json)`)));
  const res = await predict(server.url, fs.readFileSync(jpegs[0]));
  t.is(res.headers.get('x-model-version'), initial);

  // serving.json naming a checkpoint that is gone: the reload fails, the old model serves.
  const gone = keys.checkpoint(99, 0, 0);
  await store.put(keys.serving, Buffer.from(JSON.stringify({ checkpoint: gone })));
  const failed = await server.reload('test');
  t.is(failed.result, 'failed');
  t.regex(failed.error!, /serving\.json names .*99.*, which is not in/);
  t.deepEqual(((await call(`${server.url}/v2/models/alexnet`)).body as Metadata).versions, [initial]);
  t.is((await predict(server.url, fs.readFileSync(jpegs[0]))).status, 200);
  t.true(logs.some((l) => l.startsWith(`reload (test) failed; still serving ${initial}`)));
  // Nothing promoted any more: back to the newest.
  await store.delete(keys.serving);
  t.like(await server.reload('test'), { result: 'changed', checkpoint: { key: trained.latestCheckpoint, from: 'latest' } });
  const { families } = await metricsOf(server.url);
  t.is(sampleValue(families, 'alexnet_serve_reloads_total', 'alexnet_serve_reloads_total', { result: 'changed' }), 2);
  t.is(sampleValue(families, 'alexnet_serve_reloads_total', 'alexnet_serve_reloads_total', { result: 'failed' }), 1);
  t.is(sampleValue(families, 'alexnet_serve_model_info', 'alexnet_serve_model_info', { version: trained.latestCheckpoint, from: 'latest' }), 1);
  t.is(families.get('alexnet_serve_model_info')!.samples.length, 1, 'one model_info series: the one serving');
});

test.serial('not ready: live but 503 until a model is loaded; a first load that fails says why', async (t) => {
  const lines: string[] = [];
  const s = await startServer({ store: fixture.store, run: 'no-such-run', port: 0, reloadSeconds: 0, log: (l) => lines.push(l) });
  t.teardown(() => s.close());
  await t.throwsAsync(s.ready, { message: /run 'no-such-run' has no checkpoint/ });
  t.like(await call(`${s.url}/v2/health/live`), { status: 200, body: { live: true } });
  t.like(await call(`${s.url}/v2/health/ready`), { status: 503, body: { ready: false } });
  t.like(await call(`${s.url}/ping`), { status: 503, body: { status: 'Unhealthy' } });
  for (const r of [await call(`${s.url}/v2/models/alexnet`), await call(`${s.url}/v2/models/alexnet/ready`), await infer(s.url, ['aGk=']), await predict(s.url, corrupt)]) {
    t.is(r.status, 503);
    t.regex((r.body as { error: string }).error, /model 'alexnet' is not ready/);
  }
  t.true(lines.some((l) => /could not load the model: run 'no-such-run' has no checkpoint/.test(l)));
  t.like(await s.reload('test'), { result: 'failed' }, 'a reload tries again');
});

test.serial('close(): stops accepting, answers the requests in flight (one in a batch, one still sending its body)', async (t) => {
  const s = await startServer({ store: fixture.store, run: RUN, port: 0, reloadSeconds: 0, log: () => undefined });
  await s.ready;
  const busy = occupy(s.model()!);
  const pending = predict(s.url, fs.readFileSync(jpegs[0]));
  const held = heldRequest(s.url, '/v1/classify', fs.readFileSync(jpegs[1]));
  while ((await inflightOf(s)) < 2) await new Promise((r) => setTimeout(r, 2));
  const closing = s.close();
  await new Promise((r) => setTimeout(r, 50));
  const late = await held.release();
  t.is(late.status, 200, 'its body arrived after close(): answered');
  t.is((await pending).status, 200, 'the request in flight is answered');
  await busy;
  await closing;
  await t.throwsAsync(fetch(`${s.url}/v2/health/live`), undefined, 'no longer accepting');
});

test.serial('batcher: caps batches at maxBatch, splits large submissions, never mixes groups, keeps order, fails a whole batch', async (t) => {
  const runs: [string, number[]][] = [];
  const b = new Batcher<string, number, number>({
    maxBatch: 4, maxDelayMs: 20, maxInflight: 1,
    run: async (group, items) => {
      runs.push([group, items]);
      if (items.includes(-1)) throw new Error('boom');
      await new Promise((r) => setTimeout(r, 5));
      return items.map((i) => i * 10);
    },
  });
  const results = await Promise.all([b.submit('a', [1, 2]), b.submit('a', [3]), b.submit('b', [4]), b.submit('a', [5, 6, 7, 8, 9, 10])]);
  t.deepEqual(results, [[10, 20], [30], [40], [50, 60, 70, 80, 90, 100]]);
  t.true(runs.every(([, items]) => items.length <= 4));
  t.deepEqual(runs.map(([g]) => g), ['a', 'b', 'a', 'a'], 'FIFO, one group per run');
  t.deepEqual(runs[0][1], [1, 2, 3]);
  await t.throwsAsync(Promise.all([b.submit('c', [-1]), b.submit('c', [7])]), { message: 'boom' });
  t.deepEqual(await b.submit('c', [2]), [20], 'and goes on');
});

test.serial('batcher: an idle batcher starts at once; after a run it waits, up to max-delay, for that run\'s senders to come back', async (t) => {
  const runs: number[][] = [];
  const b = new Batcher<string, number, number>({ maxBatch: 8, maxDelayMs: 1000, run: async (_group, items) => { runs.push(items); return items; } });
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  let t0 = performance.now();
  t.deepEqual(await b.submit('a', [1]), [1]);
  t.true(performance.now() - t0 < 500, 'a lone item does not wait for company');
  await sleep(150);  // the run is long past: nobody is expected back
  t.deepEqual(await Promise.all([b.submit('a', [2]), b.submit('a', [3]), b.submit('a', [4])]), [[2], [3], [4]], 'what arrives in one turn runs together');
  // Its three senders come back one by one (closed-loop clients): one run of three.
  t0 = performance.now();
  await Promise.all([5, 6, 7].map(async (item, i) => {
    await sleep(5 * (i + 1));
    return b.submit('a', [item]);
  }));
  t.true(performance.now() - t0 < 500, 'they did not wait out max-delay');
  t.deepEqual(runs, [[1], [2, 3, 4], [5, 6, 7]]);
  t.throws(() => new Batcher({ maxBatch: 1, maxDelayMs: 0, maxInflight: 0, run: async () => [] }), { message: /maxInflight must be an integer >= 1/ });
});

test.serial('alexnet serve (CLI): prints its URL on port 0, answers, reloads on SIGHUP, drains and exits 0 on SIGTERM', async (t) => {
  const store = openStore(fixture.store);
  const keys = runKeys(RUN);
  const secret = 'serve-test-secret-do-not-log-1234567890';
  const child = spawn(process.execPath, [CLI, 'serve', '--store', fixture.store, '--run', RUN, '--port', '0', '--reload-seconds', '0', '--top', '3', '--max-body', '300k', '--max-queue', '64'], {
    env: { ...process.env, AWS_SECRET_ACCESS_KEY: secret }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  const waitFor = async (re: RegExp, ms = 60_000) => {
    const end = Date.now() + ms;
    while (!re.test(out)) {
      if (Date.now() > end || child.exitCode !== null) throw new Error(`no ${re} in:\n${out}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    return re.exec(out)!;
  };
  const url = (await waitFor(/listening on (http:\/\/\S+)/))[1];
  await waitFor(/serving run serve-run: /);
  t.like(await call(`${url}/v2/health/ready`), { status: 200 });
  const top = await predict(url, fs.readFileSync(jpegs[1]));
  t.is(top.status, 200);
  t.is((top.body as unknown[]).length, 3, '--top 3');
  t.is(((await classifyRoute(url, fs.readFileSync(jpegs[1]))).body as { top: unknown[] }).top.length, 3);
  t.like((await call(`${url}/v2/models/alexnet`)).body, { parameters: { max_queue: 64 } });
  const over = await classifyRoute(url, Buffer.alloc(300 * 1024 + 1));
  t.is(over.status, 413, '--max-body 300k');
  t.regex((over.body as { error: string }).error, /over the limit of 307200 bytes/);
  // SIGHUP: re-resolves serving.json now.
  const initial = keys.checkpoint(0, 0, 0);
  await store.put(keys.serving, Buffer.from(JSON.stringify({ checkpoint: initial })));
  child.kill('SIGHUP');
  await waitFor(/reload \(SIGHUP\): .*00000-0000000-000\.safetensors \(serving\) replaces/);
  await waitFor(/serving run serve-run: .*00000-0000000-000\.safetensors \(promoted/);
  t.deepEqual(((await call(`${url}/v2/models/alexnet`)).body as Metadata).versions, [initial]);
  await store.delete(keys.serving);
  // SIGTERM with a request in flight (its body still arriving): answered, exit 0.
  const held = heldRequest(url, '/v1/classify?top=2', fs.readFileSync(jpegs[0]));
  for (const end = Date.now() + 10_000; Date.now() < end;) {
    const { families } = await metricsOf(url);
    if (sampleValue(families, 'alexnet_serve_inflight_requests', 'alexnet_serve_inflight_requests')! >= 2) break;  // it and this /metrics
    await new Promise((r) => setTimeout(r, 5));
  }
  child.kill('SIGTERM');
  await waitFor(/SIGTERM: no longer accepting/);
  const answered = await held.release();
  t.is(answered.status, 200);
  t.is((answered.body as { top: unknown[] }).top.length, 2);
  t.is(await exited, 0, out);
  t.regex(out, /SIGTERM: no longer accepting/);
  t.regex(out, /stopped: every request answered/);
  t.false(out.includes(secret), 'no secret in the output');
});
