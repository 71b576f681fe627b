// alexnet serve: a trained run's model over HTTP in this process (startServer on port 0)
// and through the CLI. KServe v2 and TorchServe answers equal classifyImages in-process,
// unreadable images are refused with their reason, requests batch dynamically, a changed
// serving.json is swapped in by a reload (requests accepted before it answered by the old
// model), /metrics is valid Prometheus text, and SIGHUP/SIGTERM work on the CLI process.
import test from 'ava';
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

import { classifyImages } from '../activities/classify';
import { loadInferenceModel } from '../activities/model';
import { openStore } from '../activities/store';
import type { TrainResult } from '../common/contract';
import { runKeys } from '../common/store-layout';
import { Batcher } from '../scripts/serve/batcher';
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

const output = (a: InferAnswer, name: string) => a.outputs.find((o) => o.name === name)!;

// The Prometheus text exposition format (0.0.4), strictly: # HELP/# TYPE before a family's
// samples, each family once, sample lines `name{label="value",...} value`, histograms
// with cumulative buckets ending in le="+Inf" equal to _count.
interface Sample { name: string; labels: Record<string, string>; value: number }
function parsePrometheus(text: string): Map<string, { type: string; help: string; samples: Sample[] }> {
  if (!text.endsWith('\n')) throw new Error('the exposition must end with a newline');
  const families = new Map<string, { type: string; help: string; samples: Sample[] }>();
  const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
  for (const line of text.slice(0, -1).split('\n')) {
    let m: RegExpExecArray | null;
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
      const value = valueText === '+Inf' ? Infinity : valueText === '-Inf' ? -Infinity : valueText === 'NaN' ? NaN : Number(valueText);
      if (Number.isNaN(value) && valueText !== 'NaN') throw new Error(`bad value in: ${line}`);
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
  t.deepEqual(m.inputs, [{ name: 'image', datatype: 'BYTES', shape: [-1] }]);
  t.deepEqual(m.outputs.map((o) => o.name), ['top', 'classes', 'names', 'probabilities', 'error']);
  t.like(m.parameters, { run: RUN, checkpoint: trained.latestCheckpoint, from: 'latest', dataset: 'fashion', classes: 10, crop: 32, crops: 1, top_k: 5 });
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
    ['top', 'BYTES', [3]], ['classes', 'BYTES', [3, 3]], ['names', 'BYTES', [3, 3]], ['probabilities', 'FP32', [3, 3]], ['error', 'BYTES', [3]],
  ]);
  const model = await loadInferenceModel({ store: fixture.store, run: RUN });
  const reference = await classifyImages(model, files.map((data, i) => ({ image: String(i), data })), { topK: 3 });
  const classes = output(a, 'classes').data;
  const probs = output(a, 'probabilities').data as number[];
  reference.forEach((r, i) => {
    if (!('top' in r)) return t.fail(r.error);
    t.deepEqual(classes.slice(i * 3, i * 3 + 3), r.top.map((p) => p.class));
    t.deepEqual(output(a, 'names').data.slice(i * 3, i * 3 + 3), r.top.map((p) => p.name));
    r.top.forEach((p, j) => t.true(Math.abs(probs[i * 3 + j] - p.probability) < 1e-6));
    t.deepEqual(JSON.parse(output(a, 'top').data[i] as string), { top: r.top.map((p, j) => ({ ...p, probability: probs[i * 3 + j] })) });
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
  t.deepEqual(output(a, 'probabilities').data.slice(2), [0, 0, 0, 0], '... and probability 0');
  t.true((output(a, 'probabilities').data[0] as number) > 0);
  t.like(JSON.parse(output(a, 'top').data[1] as string), { error: errors[1] });
  // Malformed requests.
  const post = (body: string) => call(`${server.url}/v2/models/alexnet/infer`, { method: 'POST', body });
  const cases: [string, RegExp][] = [
    ['{"inputs": [', /malformed JSON/],
    ['[]', /JSON object/],
    [JSON.stringify({ inputs: [{ name: 'image', datatype: 'FP32', shape: [1], data: [1] }] }), /datatype "FP32", not BYTES/],
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

test.serial('dynamic batching: 8 concurrent requests within max-delay are classified in fewer batches; latency and throughput', async (t) => {
  const batching = await startServer({ store: fixture.store, run: RUN, port: 0, reloadSeconds: 0, maxDelayMs: 50, maxBatch: 32, log: () => undefined });
  t.teardown(() => batching.close());
  await batching.ready;
  const images = jpegs.slice(0, 8).map((f) => fs.readFileSync(f));
  const answers = await Promise.all(images.map((img) => predict(batching.url, img)));
  t.true(answers.every((a) => a.status === 200));
  const { count, sum } = batching.metrics.batchSize.stats();
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

test.serial('/metrics is Prometheus text: requests by route and code, latency and batch histograms, images, model info, reloads', async (t) => {
  const { contentType, families } = await metricsOf(server.url);
  t.is(contentType, 'text/plain; version=0.0.4; charset=utf-8');
  for (const [name, type] of [
    ['alexnet_serve_requests_total', 'counter'], ['alexnet_serve_request_duration_seconds', 'histogram'], ['alexnet_serve_batch_size', 'histogram'],
    ['alexnet_serve_batch_duration_seconds', 'histogram'], ['alexnet_serve_images_total', 'counter'], ['alexnet_serve_model_info', 'gauge'],
    ['alexnet_serve_reloads_total', 'counter'], ['alexnet_serve_ready', 'gauge'], ['alexnet_serve_inflight_requests', 'gauge'],
  ]) t.is(families.get(name)?.type, type, name);
  t.true(sampleValue(families, 'alexnet_serve_requests_total', 'alexnet_serve_requests_total', { route: '/predictions/{name}', code: '200' })! > 0);
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
  // A request accepted before the swap (the batcher holds it 300 ms) is answered by the old model.
  const slow = await startServer({ store: fixture.store, run: RUN, port: 0, reloadSeconds: 0, maxDelayMs: 300, log: (l) => logs.push(`slow: ${l}`) });
  t.teardown(() => slow.close());
  await slow.ready;
  const pending = infer(slow.url, [fs.readFileSync(jpegs[0]).toString('base64')]);
  while (!(slow.metrics.inflight.value()! >= 1)) await new Promise((r) => setTimeout(r, 2));
  await store.put(keys.serving, Buffer.from(JSON.stringify({ checkpoint: initial, top1Error: 0.9, top5Error: 0.5, split: 'test', crops: 1, images: 10, report: '', evaluation: 'test', promotedAt: new Date().toISOString() })));
  const swapped = await slow.reload('test');
  t.like(swapped, { result: 'changed', checkpoint: { key: initial, from: 'serving' }, previous: { key: trained.latestCheckpoint, from: 'latest' } });
  const old = await pending;
  t.is(old.status, 200);
  t.is((old.body as InferAnswer).model_version, trained.latestCheckpoint, 'accepted before the swap: the old model answered');
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

test.serial('close(): stops accepting, answers the requests in flight; bodies over the limit are 413', async (t) => {
  const s = await startServer({ store: fixture.store, run: RUN, port: 0, reloadSeconds: 0, maxDelayMs: 500, maxBodyBytes: 100_000, log: () => undefined });
  await s.ready;
  const big = await predict(s.url, Buffer.alloc(200_000, 1));
  t.is(big.status, 413);
  t.regex((big.body as { error: string }).error, /over the limit of 100000/);
  const pending = predict(s.url, fs.readFileSync(jpegs[0]));
  while (!(s.metrics.inflight.value()! >= 1)) await new Promise((r) => setTimeout(r, 2));
  const closing = s.close();
  t.is((await pending).status, 200, 'the request in flight is answered');
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

test.serial('alexnet serve (CLI): prints its URL on port 0, answers, reloads on SIGHUP, drains and exits 0 on SIGTERM', async (t) => {
  const store = openStore(fixture.store);
  const keys = runKeys(RUN);
  const secret = 'serve-test-secret-do-not-log-1234567890';
  const child = spawn(process.execPath, [CLI, 'serve', '--store', fixture.store, '--run', RUN, '--port', '0', '--max-delay-ms', '300', '--reload-seconds', '0', '--top', '3'], {
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
  // SIGHUP: re-resolves serving.json now.
  const initial = keys.checkpoint(0, 0, 0);
  await store.put(keys.serving, Buffer.from(JSON.stringify({ checkpoint: initial })));
  child.kill('SIGHUP');
  await waitFor(/reload \(SIGHUP\): .*00000-0000000-000\.safetensors \(serving\) replaces/);
  await waitFor(/serving run serve-run: .*00000-0000000-000\.safetensors \(promoted/);
  t.deepEqual(((await call(`${url}/v2/models/alexnet`)).body as Metadata).versions, [initial]);
  await store.delete(keys.serving);
  // SIGTERM with a request in flight (held by the 300 ms batching delay): answered, exit 0.
  const pending = infer(url, jpegs.slice(0, 4).map((f) => fs.readFileSync(f).toString('base64')));
  for (const end = Date.now() + 10_000; Date.now() < end;) {
    const { families } = await metricsOf(url);
    if (sampleValue(families, 'alexnet_serve_inflight_requests', 'alexnet_serve_inflight_requests')! >= 2) break;  // it and this /metrics
    await new Promise((r) => setTimeout(r, 5));
  }
  child.kill('SIGTERM');
  const answered = await pending;
  t.is(answered.status, 200);
  t.is(output(answered.body as InferAnswer, 'classes').shape[0], 4);
  t.is(await exited, 0, out);
  t.regex(out, /SIGTERM: no longer accepting/);
  t.regex(out, /stopped: every request answered/);
  t.false(out.includes(secret), 'no secret in the output');
});
