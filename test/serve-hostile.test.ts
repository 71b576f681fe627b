// alexnet serve against hostile clients (issue 23), each probe reproduced against a real
// server (startServer on port 0, on a run made without training: scripts/bench/serve-hostile.ts):
// requests declaring millions of elements are refused 413 from their first bytes with the
// server's memory and liveness unharmed (binary and JSON forms, four at once), deeply
// nested JSON is a 400 naming the field, slow and idle clients are cut off by the headers,
// request and keep-alive timeouts (408), a first model load that fails for a passing reason
// is retried with readiness saying why, and one SIGTERM ends the CLI process even while a
// store request hangs.
import test from 'ava';
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';

import { datasetKeys } from '../common/store-layout';
import { hostileBinaryRequest, hostileJsonRequest, makeServableRun, measureHostile, post, type HostileRequest } from '../scripts/bench/serve-hostile';
import { JsonScanner } from '../scripts/serve/json-scanner';
import { MAX_JSON_DEPTH } from '../scripts/serve/protocol';
import { startServer, type ServerHandle } from '../scripts/serve/server';
import { CLI, tmpDir } from './helpers';

const RUN = 'hostile';
let storeDir: string;
let server: ServerHandle;
const logs: string[] = [];

const json = (value: unknown): HostileRequest => ({ form: 'json', body: Buffer.from(JSON.stringify(value)), headers: { 'Content-Type': 'application/json' } });
const inferUrl = (base: string) => `${base}/v2/models/alexnet/infer`;
const errorOf = (text: string) => (JSON.parse(text) as { error: string }).error;
const tensor = (n = 1) => ({ name: 'images', datatype: 'FP32', shape: [n, 3, 32, 32], data: new Array<number>(n * 3 * 32 * 32).fill(100) });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// Triton's binary extension: `header` as the JSON part, then `binary`.
function binaryRequest(header: unknown, binary: Buffer): HostileRequest {
  const text = Buffer.from(JSON.stringify(header));
  return { form: 'binary', body: Buffer.concat([text, binary]), headers: { 'Content-Type': 'application/octet-stream', 'Inference-Header-Content-Length': String(text.length) } };
}

// A raw TCP connection that sends `bytes` and records what comes back until the server
// closes it, and when.
function rawConnection(base: string, bytes: string): Promise<{ ms: number; text: string }> {
  const url = new URL(base);
  return new Promise((resolve) => {
    const t0 = performance.now();
    let text = '';
    const socket = net.connect(Number(url.port), url.hostname, () => { if (bytes) socket.write(bytes); });
    socket.on('data', (d: Buffer) => { text += d.toString(); });
    socket.on('error', () => undefined);
    socket.on('close', () => resolve({ ms: performance.now() - t0, text }));
  });
}

test.before(async () => {
  storeDir = tmpDir('alexnet-serve-hostile-');
  await makeServableRun(`file://${storeDir}`, { run: RUN });
  server = await startServer({ store: `file://${storeDir}`, run: RUN, port: 0, reloadSeconds: 0, log: (l) => logs.push(l) });
  await server.ready;
});

test.after.always(async () => {
  await server?.close();
});

for (const [form, make, refusal] of [
  ['binary', () => hostileBinaryRequest(5_000_000), /^5000000 images in one request, more than the server queues \(--max-queue 256\)/],
  ['JSON', () => hostileJsonRequest(17_000_000), /^the request holds more than 1280 strings, more than 256 image files \(--max-queue\)/],
] as const) {
  test.serial(`serve hostile: four ${form} requests declaring millions of empty images at once are 413 from their first bytes; RSS and liveness unharmed`, async (t) => {
    const request = make();
    const m = await measureHostile(server.url, request, () => process.memoryUsage.rss());
    t.log(`${form} (${(request.body.length / 1e6).toFixed(1)} MB x 4): peak RSS growth ${m.peak_rss_growth_mb} MB, /v2/health/live max ${m.live_max_ms} ms, p50 ${m.live_p50_ms} ms (${m.live_polls} polls), answered in ${m.seconds} s`);
    t.deepEqual(m.statuses, [413, 413, 413, 413]);
    for (const a of m.answers) t.regex(errorOf(a.text), refusal);
    t.true(m.peak_rss_growth_mb < 100, `RSS grew ${m.peak_rss_growth_mb} MB`);
    t.true(m.live_max_ms < 500, `liveness took up to ${m.live_max_ms} ms`);
    t.is((await post(inferUrl(server.url), json({ inputs: [tensor()] }).body, {})).status, 200, 'still serving');
  });
}

test.serial('serve hostile: declared shapes and element counts over the limits are refused before the data is built; a binary walk stops at the first element past the shape', async (t) => {
  const cases: [string, HostileRequest, number, RegExp][] = [
    ['FP32 binary declaring 10^9 images', binaryRequest({ inputs: [{ name: 'images', datatype: 'FP32', shape: [1e9, 3, 32, 32], parameters: { binary_data_size: 12288 } }] }, Buffer.alloc(12288)), 413, /^1000000000 images in one request/],
    ['BYTES JSON declaring 5,000,000 images', json({ inputs: [{ name: 'image', datatype: 'BYTES', shape: [5_000_000], data: ['aGk='] }] }), 413, /^5000000 images in one request/],
    ['FP32 JSON with more numbers than 256 images hold', { form: 'json', body: Buffer.from(`{"inputs":[{"name":"images","datatype":"FP32","shape":[1,3,32,32],"data":[${'0,'.repeat(800_000)}0]}]}`), headers: {} }, 413, /^the request holds more than 787456 values, more than 256 images of 3x32x32/],
    ['BYTES binary of shape [1] with 1000 elements', binaryRequest({ inputs: [{ name: 'image', datatype: 'BYTES', shape: [1], parameters: { binary_data_size: 4000 } }] }, Buffer.alloc(4000)), 400, /^input "image" has shape \[1\] but more binary data elements/],
    ['binary_data_size against the body', binaryRequest({ inputs: [{ name: 'image', datatype: 'BYTES', shape: [1], parameters: { binary_data_size: 10 } }] }, Buffer.alloc(4000)), 400, /binary_data_size 10 does not match the 4000 bytes after the JSON/],
  ];
  for (const [what, request, status, reason] of cases) {
    const r = await post(inferUrl(server.url), request.body, request.headers);
    t.is(r.status, status, `${what}: ${r.text}`);
    t.regex(errorOf(r.text), reason, what);
  }
  t.false(logs.some((l) => l.startsWith('500')), logs.join('\n'));
});

test.serial(`serve hostile: JSON nested 10,000 deep is a 400 naming the field (the limit: ${MAX_JSON_DEPTH} deep), never a 500`, async (t) => {
  const deep = `${'['.repeat(10_000)}${']'.repeat(10_000)}`;
  const image = '{"name":"image","datatype":"BYTES","shape":[1],"data":["aGk="]}';
  const cases: [string, string][] = [
    ['inputs[0].data', `{"inputs":[{"name":"image","datatype":"BYTES","shape":[1],"data":${deep}}]}`],
    ['inputs[0].shape', `{"inputs":[{"name":"image","datatype":"BYTES","shape":${deep},"data":["aGk="]}]}`],
    ['inputs[0].name', `{"inputs":[{"name":${deep},"datatype":"BYTES","shape":[1],"data":["aGk="]}]}`],
    ['parameters.top_k', `{"inputs":[${image}],"parameters":{"top_k":${deep}}}`],
    ['the request body', deep],
  ];
  for (const [field, body] of cases) {
    const r = await post(inferUrl(server.url), Buffer.from(body), { 'Content-Type': 'application/json' });
    t.is(r.status, 400, `${field}: ${r.text}`);
    t.is(errorOf(r.text), `${field} nests arrays and objects more than ${MAX_JSON_DEPTH} deep, more than this server reads`);
  }
  // The binary extension's JSON part is held to the same limit.
  const header = Buffer.from(`{"inputs":[{"name":"image","datatype":"BYTES","shape":[1],"data":${deep},"parameters":{"binary_data_size":4}}]}`);
  const binary = await post(inferUrl(server.url), Buffer.concat([header, Buffer.alloc(4)]), { 'Inference-Header-Content-Length': String(header.length) });
  t.is(binary.status, 400, binary.text);
  t.regex(errorOf(binary.text), /^inputs\[0\]\.data nests arrays and objects more than 32 deep/);
  // Exactly at the limit is read: the root object, "parameters", and 30 arrays.
  const nest = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;
  const request = (n: number) => Buffer.from(`{"inputs":[${JSON.stringify(tensor())}],"parameters":{"x":${nest(n)}}}`);
  t.is((await post(inferUrl(server.url), request(MAX_JSON_DEPTH - 2), {})).status, 200);
  const over = await post(inferUrl(server.url), request(MAX_JSON_DEPTH - 1), {});
  t.is(over.status, 400);
  t.regex(errorOf(over.text), /^parameters\.x nests/);
  t.false(logs.some((l) => l.startsWith('500')), logs.join('\n'));
  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  t.notRegex(metrics, /code="500"/);
});

test.serial('JsonScanner: the same counts and refusals whatever the chunking; brackets, quotes and backslashes inside strings are text', (t) => {
  const limits = {
    maxDepth: 4, maxStrings: 5, maxValues: 9,
    tooMany: (what: string, limit: number) => new Error(`${what} ${limit}`),
    tooDeep: (field: string, limit: number) => new Error(`${field} nests arrays and objects more than ${limit} deep, more than this server reads`),
  };
  const scan = (text: string, chunk: number) => {
    const scanner = new JsonScanner(limits);
    const bytes = Buffer.from(text);
    try {
      for (let at = 0; at < bytes.length; at += chunk) scanner.scan(bytes.subarray(at, at + chunk));
      return `strings ${scanner.strings}, values ${scanner.values}`;
    } catch (e) {
      return (e as Error).message;
    }
  };
  const cases: [string, string][] = [
    [JSON.stringify({ 'k[{': ['a"[[[[[', 'b\\', '\u005b'], n: [1, -2.5e3, true, null], 'e\\"': { x: 'y' } }), 'strings 4, values 8'],
    [JSON.stringify({ a: { b: [[['x']]] } }), 'a.b nests arrays and objects more than 4 deep, more than this server reads'],
    [JSON.stringify({ a: [{ b: 1 }, { c: [[[1]]] }] }), 'a[1].c nests arrays and objects more than 4 deep, more than this server reads'],
    [JSON.stringify(['1', '2', '3', '4', '5', '6']), 'strings 5'],
    [JSON.stringify([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]), 'values 9'],
  ];
  for (const [text, expected] of cases) {
    for (const chunk of [1, 2, 3, 7, text.length]) t.is(scan(text, chunk), expected, `${text} in chunks of ${chunk}`);
  }
});

test.serial('serve hostile: idle connections, slow headers and stalled bodies are cut off by the timeouts (408, closed); a slow answer is not', async (t) => {
  const s = await startServer({ store: `file://${storeDir}`, run: RUN, port: 0, reloadSeconds: 0, headersTimeoutMs: 1000, requestTimeoutMs: 2000, keepAliveTimeoutMs: 1000, log: () => undefined });
  t.teardown(() => s.close());
  await s.ready;
  const timedOut = (text: string) => {
    t.regex(text, /^HTTP\/1\.1 408 Request Timeout\r\n/);
    t.regex(text, /\r\nConnection: close\r\n/);
    t.regex(errorOf(text.slice(text.indexOf('\r\n\r\n') + 4)), /^the request did not arrive in time: its headers must arrive within 1000 ms \(--headers-timeout\), all of it within 2000 ms \(--request-timeout\)/);
  };
  const [idle, headers, body, kept] = await Promise.all([
    Promise.all(Array.from({ length: 20 }, () => rawConnection(s.url, ''))),  // never a byte
    rawConnection(s.url, 'POST /v1/classify HTTP/1.1\r\nHost: x\r\n'),  // headers never end
    rawConnection(s.url, 'POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 1000\r\n\r\n0123456789'),  // 10 of 1000 bytes
    rawConnection(s.url, 'GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n'),  // answered, then idle
  ]);
  t.log(`closed after: idle ${Math.round(Math.max(...idle.map((c) => c.ms)))} ms (20 connections), slow headers ${Math.round(headers.ms)} ms, stalled body ${Math.round(body.ms)} ms, idle keep-alive ${Math.round(kept.ms)} ms`);
  for (const c of idle) {
    t.true(c.ms > 900 && c.ms < 3000, `an idle connection closed after ${c.ms} ms`);
    timedOut(c.text);
  }
  t.true(headers.ms > 900 && headers.ms < 3000, `${headers.ms} ms`);
  timedOut(headers.text);
  t.true(body.ms > 1900 && body.ms < 4000, `${body.ms} ms`);
  timedOut(body.text);
  t.regex(kept.text, /^HTTP\/1\.1 200 OK\r\n[^]*Keep-Alive: timeout=1\r\n/);
  t.true(kept.ms > 900 && kept.ms < 3500, `${kept.ms} ms (Node closes 1 s after the advertised keep-alive timeout)`);
  const metrics = await (await fetch(`${s.url}/metrics`)).text();
  t.regex(metrics, /alexnet_serve_requests_total\{route="\/v1\/classify",code="408"\} 1\n/, 'the stalled body counted as 408');

  // A request whose body is in waits for its answer as long as it takes: the network busy
  // for longer than the request timeout, then answered.
  const model = s.model()!;
  const images = new Float32Array(256 * model.net.inputSize);  // read only: one array for every call
  let perCall = Infinity;  // the fastest of three calls (the first warms up)
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    await model.net.predict(images);
    perCall = Math.min(perCall, performance.now() - t0);
  }
  const busy = Promise.all(Array.from({ length: Math.ceil(3000 / Math.max(1, perCall)) }, () => model.net.predict(images)));
  const started = performance.now();
  const slow = await post(inferUrl(s.url), json({ inputs: [tensor()] }).body, {});
  const waited = performance.now() - started;
  await busy;
  t.log(`a request answered after ${Math.round(waited)} ms (request timeout 2000 ms)`);
  t.is(slow.status, 200, slow.text);
  t.true(waited > 2000, `answered after ${waited} ms: the network was not busy long enough to prove anything`);
});

test.serial('serve hostile: a first load failing for a passing reason is retried with backoff, readiness saying why; it serves once the store is whole', async (t) => {
  const dir = tmpDir('alexnet-serve-retry-', t);
  await makeServableRun(`file://${dir}`, { run: 'retry', dataset: 'retry' });
  const meanFile = path.join(dir, datasetKeys('retry').meanImage);
  const mean = fs.readFileSync(meanFile);
  fs.rmSync(meanFile);  // an object not found: a plain error, which may pass
  const lines: string[] = [];
  const s = await startServer({ store: `file://${dir}`, run: 'retry', port: 0, reloadSeconds: 0, log: (l) => lines.push(l) });
  t.teardown(() => s.close());
  let reason = '';
  for (const end = Date.now() + 10_000; !/attempt 1 failed/.test(reason) && Date.now() < end; await sleep(20)) {
    const r = await fetch(`${s.url}/v2/health/ready`);
    t.is(r.status, 503);
    reason = ((await r.json()) as { reason: string }).reason;
  }
  t.regex(reason, /^loading the model of run retry from file:\/\/\S+: attempt 1 failed: .*mean\.safetensors.*; attempt 2 at \d{4}-/);
  t.regex(lines.join('\n'), /could not load the model \(attempt 1; trying again in 1 s\): .*mean\.safetensors/);
  const infer = await post(inferUrl(s.url), json({ inputs: [tensor()] }).body, {});
  t.is(infer.status, 503);
  t.regex(errorOf(infer.text), /^model 'alexnet' is not ready: loading the model of run retry/);
  fs.writeFileSync(meanFile, mean);
  await s.ready;
  t.is((await fetch(`${s.url}/v2/health/ready`)).status, 200);
  t.true(lines.some((l) => l.startsWith('serving run retry:')), lines.join('\n'));
});

test.serial('alexnet serve (CLI): a first load hanging on an S3 endpoint that never answers: not ready with the reason; one SIGTERM exits 0 at once, also between retries', async (t) => {
  const sockets: net.Socket[] = [];
  const silent = net.createServer((socket) => {  // accepts, says nothing
    sockets.push(socket);
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    sockets.forEach((s) => s.destroy());
    silent.close();
  });
  const endpoint = `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}`;
  const secret = 'serve-hostile-secret-do-not-log-0987654321';

  // `alexnet serve` on s3://bucket at the silent endpoint: its readiness until `until`
  // matches it, then one SIGTERM; its readiness answers, exit code and output.
  const serveUntil = async (env: NodeJS.ProcessEnv, until: RegExp) => {
    const child = spawn(process.execPath, [CLI, 'serve', '--store', 's3://bucket', '--run', 'r', '--port', '0'], {
      env: { ...process.env, AWS_ENDPOINT_URL: endpoint, AWS_ENDPOINT_URL_S3: endpoint, AWS_ACCESS_KEY_ID: 'AKIDSERVEHOSTILE', AWS_SECRET_ACCESS_KEY: secret, AWS_REGION: 'us-east-1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
    for (const end = Date.now() + 60_000; !/listening on http:\/\/\S+/.test(out); await sleep(20)) {
      if (Date.now() > end || child.exitCode !== null) throw new Error(`no "listening on" in:\n${out}`);
    }
    const url = /listening on (http:\/\/\S+)/.exec(out)![1];
    const answers: { status: number; text: string }[] = [];
    for (const end = Date.now() + 20_000; Date.now() < end && !until.test(answers.at(-1)?.text ?? ''); await sleep(50)) {
      const r = await fetch(`${url}/v2/health/ready`);
      answers.push({ status: r.status, text: await r.text() });
    }
    child.kill('SIGTERM');
    const t0 = Date.now();
    const code = await Promise.race([exited, sleep(10_000).then(() => 'still running 10 s after SIGTERM')]);
    return { answers, code, ms: Date.now() - t0, out };
  };

  // The store's default timeouts: the first attempt hangs (60 s) when SIGTERM comes.
  const hanging = await serveUntil({}, /attempt 1 since/);
  t.true(hanging.answers.every((a) => a.status === 503));
  t.regex(readinessReason(hanging.answers.at(-1)!.text), /^loading the model of run r from s3:\/\/bucket: attempt 1 since \d{4}-/);
  t.is(hanging.code, 0, hanging.out);
  t.log(`a load hanging: exited ${hanging.ms} ms after one SIGTERM`);
  t.regex(hanging.out, /SIGTERM: no longer accepting[^]*stopped: every request answered/);

  // A short read timeout: the attempt fails, is retried, readiness says why meanwhile.
  const retried = await serveUntil({ AWS_MAX_ATTEMPTS: '1', ALEXNET_S3_READ_TIMEOUT_MS: '300', ALEXNET_S3_REQUEST_TIMEOUT_MS: '300' }, /attempt 1 failed/);
  const last = retried.answers.at(-1)!;
  t.is(last.status, 503);
  t.regex(readinessReason(last.text), /attempt 1 failed: .*s3:\/\/bucket.*/);
  t.is(retried.code, 0, retried.out);
  t.log(`between retries: exited ${retried.ms} ms after one SIGTERM`);
  t.regex(retried.out, /could not load the model \(attempt 1; trying again in 1 s\): /);
  for (const text of [hanging.out, retried.out, ...hanging.answers.map((a) => a.text), ...retried.answers.map((a) => a.text)]) t.false(text.includes(secret), 'no secret in an answer or the output');
});

// The reason in a readiness answer ({"ready": false, "reason"}).
function readinessReason(text: string): string {
  return (JSON.parse(text) as { reason: string }).reason;
}
