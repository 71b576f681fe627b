// The hostile-input measurement of `alexnet serve` (issue 23, finding 1): a request that
// declares millions of empty image elements must be refused without building anything per
// element. It starts `alexnet serve` as its own process on a fresh local run, sends four
// such requests at once (Triton's binary extension: BYTES "image" of shape [5000000],
// 4-byte zero lengths; or plain JSON: 17 MB of "" elements), polls /v2/health/live every
// 20 ms meanwhile, and reports the server's peak RSS growth (from /proc/PID/status, read
// outside its event loop) and the liveness latencies, one JSON line per form:
//   node dist/scripts/bench/serve-hostile.js
// Target: RSS growth < 100 MB and liveness max < 100 ms, with every answer a 413.
import { spawn, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as http from 'http';
import * as os from 'os';
import * as path from 'path';

import { Network } from '../../native/index';
import { DIST_DIR } from '../paths';
import { percentile, round } from './numbers';
import { writeServableRun } from './servable-run';

// A randomly initialised `model` saved as run `run` of a dataset in a local store, with
// every file inference reads (manifest, mean image, class ids and names, run.json, the
// checkpoint and latest.json): something to serve without training.
export async function makeServableRun(store: string, { run = 'hostile', dataset = 'hostile', model = 'alexnet-32', imageSize = 36 } = {}): Promise<void> {
  const net = new Network(model, { seed: 1 });
  const classIds = Array.from({ length: net.config.classes }, (_, i) => `class${i}`);
  const mean = new Float32Array(imageSize * imageSize * 3).fill(128);
  await writeServableRun(store, { run, dataset, net, imageSize, classIds, mean, source: 'makeServableRun' });
}

export interface HostileRequest { form: string; body: Buffer; headers: Record<string, string> }

// Triton's binary extension: BYTES "image" declaring `elements` elements, each a 4-byte zero
// length (19 MB for the 5,000,000 of the report).
export function hostileBinaryRequest(elements = 5_000_000): HostileRequest {
  const header = Buffer.from(JSON.stringify({ inputs: [{ name: 'image', datatype: 'BYTES', shape: [elements], parameters: { binary_data_size: 4 * elements } }] }));
  return {
    form: 'binary', body: Buffer.concat([header, Buffer.alloc(4 * elements)]),
    headers: { 'Content-Type': 'application/octet-stream', 'Inference-Header-Content-Length': String(header.length) },
  };
}

// Plain JSON: `bytes` of "" elements in "data" (17 MB: about 5.7 million), the shape agreeing.
export function hostileJsonRequest(bytes = 17_000_000): HostileRequest {
  const elements = Math.floor(bytes / 3);
  const head = `{"inputs":[{"name":"image","datatype":"BYTES","shape":[${elements}],"data":[`;
  return { form: 'json', body: Buffer.from(`${head}${'"",'.repeat(elements - 1)}""]}]}`), headers: { 'Content-Type': 'application/json' } };
}

// One POST; its answer as soon as it comes, even when the server stops reading the body
// early and closes (the write's EPIPE after the answer is no failure).
export function post(url: string, body: Buffer, headers: Record<string, string>): Promise<{ status: number; text: string }> {
  const u = new URL(url);
  return new Promise((resolve) => {
    let answered = false;
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', agent: false, headers: { ...headers, 'Content-Length': body.length } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => { answered = true; resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }); });
      res.on('error', () => { if (!answered) resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }); });
    });
    req.on('error', (e) => { if (!answered) resolve({ status: 0, text: e.message }); });
    req.end(body);
  });
}

export const residentBytes = (pid: number): number => {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
};

export interface HostileMeasurement {
  form: string;
  statuses: number[];
  peak_rss_growth_mb: number;
  live_max_ms: number;
  live_p50_ms: number;
  live_polls: number;
  seconds: number;
}

// Sends `concurrency` copies of `request` at once to `base`'s infer route while polling
// /v2/health/live every 20 ms (and the RSS of `rss()` every 10 ms), until every answer is
// in and 200 ms more have passed.
export async function measureHostile(base: string, request: HostileRequest, rss: () => number, concurrency = 4): Promise<HostileMeasurement & { answers: { status: number; text: string }[]; latencies: number[] }> {
  const latencies: number[] = [];
  const agent = new http.Agent({ keepAlive: true });
  const poll = () => new Promise<void>((resolve) => {
    http.get(`${base}/v2/health/live`, { agent }, (res) => { res.resume(); res.on('end', resolve); }).on('error', () => resolve());
  });
  await poll();  // the connection made and the route warm before measuring
  const baseline = rss();
  let peak = baseline;
  let done = false;
  const sampler = setInterval(() => { peak = Math.max(peak, rss()); }, 10);
  const live = (async () => {
    while (!done) {
      const t0 = performance.now();
      await poll();
      latencies.push(performance.now() - t0);
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  const t0 = performance.now();
  const answers = await Promise.all(Array.from({ length: concurrency }, () => post(`${base}/v2/models/alexnet/infer`, request.body, request.headers)));
  const seconds = (performance.now() - t0) / 1000;
  await new Promise((r) => setTimeout(r, 200));
  done = true;
  await live;
  clearInterval(sampler);
  agent.destroy();
  peak = Math.max(peak, rss());
  const sorted = [...latencies].sort((a, b) => a - b);
  return {
    form: request.form, statuses: answers.map((a) => a.status), answers, latencies,
    peak_rss_growth_mb: round((peak - baseline) / 2 ** 20, 1), live_max_ms: round(sorted.at(-1) ?? NaN, 1),
    live_p50_ms: round(percentile(sorted, 0.5), 1), live_polls: sorted.length, seconds: round(seconds, 2),
  };
}

// `alexnet serve` on `store` as a child process, once it serves: its URL and process.
async function startServeProcess(store: string, run: string): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, [path.join(DIST_DIR, 'scripts', 'alexnet.js'), 'serve', '--store', store, '--run', run, '--port', '0', '--reload-seconds', '0'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  for (const end = Date.now() + 60_000; !/serving run /.test(err);) {
    if (Date.now() > end || child.exitCode !== null) throw new Error(`alexnet serve did not start:\n${err}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return { url: /listening on (http:\/\/\S+)/.exec(err)![1], child };
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'alexnet-serve-hostile-'));
  try {
    const store = `file://${dir}`;
    await makeServableRun(store);
    for (const request of [hostileBinaryRequest(), hostileJsonRequest()]) {
      const { url, child } = await startServeProcess(store, 'hostile');  // a fresh process per form: its own baseline
      try {
        await new Promise((r) => setTimeout(r, 500));
        const { answers, latencies, ...measured } = await measureHostile(url, request, () => residentBytes(child.pid!));
        console.log(JSON.stringify({ ...measured, body_mb: round(request.body.length / 1e6, 1), first_answer: answers[0].text.slice(0, 200), latencies_ms: latencies.map((l) => round(l, 1)) }));
      } finally {
        child.kill('SIGKILL');
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  main().catch((e: Error) => {
    console.error(e);
    process.exit(1);
  });
}
