// alexnet serve's HTTP server: a trained run's model behind its own route, the routes
// KServe v2 / Open Inference Protocol and TorchServe clients know, with dynamic batching
// (batcher.ts, inference.ts), hot reload of the run's checkpoint, Prometheus metrics
// (metrics.ts), limits on bodies and on the queue, and a graceful close. Stateless: the
// model comes from the store, so any number can run behind a load balancer.
//
// Routes (name = options.name, default 'alexnet'; {version} = the checkpoint key, URL-encoded):
//   POST /v1/classify[?top=K&crops=1|10]  the image file as the body (JPEG, PNG, WebP...) ->
//                                          200 {"top": [{"class","name","probability"}...], "checkpoint", "ms"}
//   GET  /v2/health/live                   200 {"live": true}
//   GET  /v2/health/ready                  200 {"ready": true} | 503 {"ready": false, "reason"}
//   GET  /v2                               server metadata {"name", "version", "extensions": []}
//   GET  /v2/models/{name}[/versions/{version}]          model metadata
//   GET  /v2/models/{name}[/versions/{version}]/ready    200 {"name", "ready": true} | 503
//   POST /v2/models/{name}[/versions/{version}]/infer    inference (protocol.ts)
//   POST|PUT /predictions/{name}[/{version}]             TorchServe: the raw image as the body
//   GET  /ping                             200 {"status": "Healthy"} | 503 {"status": "Unhealthy"}
//   GET  /metrics                          Prometheus text format
// Errors: {"error": "..."}; 400 a bad request or an image that does not decode, 404 an
// unknown route, model or version, 405 a wrong method, 408 a request not in within its
// timeout, 413 a body over maxBodyBytes or more images than maxQueue, 503 no model loaded
// yet, shutting down, or more than maxQueue images waiting (with Retry-After).
//
// Slow or idle clients do not hold connections: headers must be in within headersTimeoutMs
// and the whole request within requestTimeoutMs, else 408 and the connection closes (Node's
// checks, run every CONNECTIONS_CHECK_MS at most; Node 20 counts a new connection that never
// sends a byte as waiting for headers, so no guard of our own is needed); an idle keep-alive
// connection closes keepAliveTimeoutMs after its last answer (Node adds 1 s to what it
// advertises in Keep-Alive: timeout=).
//
// The first model load is retried with backoff while it fails for a reason that may pass
// (a timeout, the network, the store's 5xx: anything but a non-retryable
// ApplicationFailure, such as no such run); /v2/health/ready says why it is not ready.
import { ApplicationFailure } from '@temporalio/common';
import * as fs from 'fs';
import * as http from 'http';
import type * as net from 'net';
import * as path from 'path';
import { setTimeout as sleep } from 'timers/promises';

import { topClasses } from '../../activities/classify';
import { describeModel, loadInferenceModel, resolveCheckpoint, type InferenceModel, type ModelSource, type ResolvedCheckpoint } from '../../activities/model';
import { openStore, StoreConfigurationError } from '../../activities/store';
import { defaultDevice } from '../../native/index';
import { REPO_ROOT } from '../paths';
import { Batcher } from './batcher';
import { scoreJobs, type Job, type Scored } from './inference';
import { serveMetrics, type ServeMetrics } from './metrics';
import { cropsParameter, HttpError, inferOutputs, message, readBody, readInferRequest, scrubSecrets, send, sendText, tooManyImages, topKParameter } from './protocol';

export const DEFAULT_MAX_BODY_BYTES = 20 << 20;
export const DEFAULT_MAX_QUEUE = 256;
export const DEFAULT_HEADERS_TIMEOUT_MS = 10_000;
export const DEFAULT_REQUEST_TIMEOUT_MS = 60_000;
export const DEFAULT_KEEP_ALIVE_TIMEOUT_MS = 5_000;
export const DEFAULT_SHUTDOWN_GRACE_MS = 30_000;
// How often Node checks its connections against the headers and request timeouts (its
// default, 30 s, would let a 10 s timeout run to 40 s); a quarter of the shorter timeout
// when that is less.
const CONNECTIONS_CHECK_MS = 1000;
// The first model load's retries: 1 s, doubling, at most a minute apart.
const LOAD_RETRY_FIRST_MS = 1000;
const LOAD_RETRY_MAX_MS = 60_000;

export interface ServeOptions extends ModelSource {
  name?: string;            // the model's name in the routes (default 'alexnet')
  host?: string;            // default 127.0.0.1
  port?: number;            // default 8080; 0: any free port (see the handle's url)
  maxBatch?: number;        // images per classification batch (default 32)
  maxDelayMs?: number;      // how long a request waits for others to batch with (default 5)
  maxInflight?: number;     // batches under way at once (default 1 on the CPU; 2 on a GPU: one decodes while another is in the network)
  reloadSeconds?: number;   // re-resolve the run's checkpoint this often; 0: never (default 30)
  topK?: number;            // classes per image unless a request asks otherwise (default 5)
  crops?: 1 | 10;           // evaluation's centre crop or ten patches, unless a request asks (default 1)
  maxBodyBytes?: number;    // request bodies larger than this are refused, 413 (default 20 MiB)
  maxQueue?: number;        // images waiting for a batch beyond this are refused, 503 + Retry-After (default 256)
  defaultMetrics?: boolean; // Node's process metrics in /metrics too (default true)
  shutdownGraceMs?: number; // close() waits this long for requests in flight (default 30 s)
  headersTimeoutMs?: number;   // a request's headers must be in within this, else 408 (default 10 s)
  requestTimeoutMs?: number;   // a whole request (headers and body) within this, else 408 (default 60 s)
  keepAliveTimeoutMs?: number; // an idle keep-alive connection closes after this (default 5 s)
  log?: (line: string) => void;  // default: stderr, prefixed 'alexnet serve: '
}

export interface ReloadResult {
  result: 'changed' | 'unchanged' | 'failed';
  checkpoint?: ResolvedCheckpoint;  // what serves after the reload
  previous?: ResolvedCheckpoint;    // what served before it, when changed
  error?: string;
}

export interface ServerHandle {
  url: string;                      // http://host:port, the port the server listens on
  ready: Promise<void>;             // the first model loaded; rejects with why it could not be (a reason that does not pass), or when closed first
  model(): InferenceModel | undefined;
  reload(trigger?: string): Promise<ReloadResult>;
  metrics: ServeMetrics;
  close(): Promise<void>;           // stop accepting, answer the requests in flight, stop
}

// The package's version, for the server metadata.
const VERSION = (() => {
  try {
    return (JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
})();

// '/v2/models/{name}/infer' against a path's segments: the placeholders' values, or undefined.
function matchPattern(pattern: string[], segments: string[]): Record<string, string> | undefined {
  if (pattern.length !== segments.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < pattern.length; i++) {
    const m = /^\{(\w+)\}$/.exec(pattern[i]);
    if (m) params[m[1]] = segments[i];
    else if (pattern[i] !== segments[i]) return undefined;
  }
  return params;
}

// Whether a failed model load may succeed when tried again: anything but a non-retryable
// ApplicationFailure (activities/model.ts refuses a missing run, checkpoint or dataset so)
// or a store that is configured wrong (no such bucket, credentials missing or refused,
// access denied); the store's timeouts, network errors and 5xx may pass.
const worthRetrying = (e: unknown) => !(e instanceof ApplicationFailure && e.nonRetryable) && !(e instanceof StoreConfigurationError);

// `work`, or a rejection as soon as `signal` aborts (the work goes on unheeded: a store
// request without a timeout may never end).
function abortable<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const abort = () => reject(new Error('aborted'));
    if (signal.aborted) return abort();
    signal.addEventListener('abort', abort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', abort)).catch(() => undefined);
  });
}

// started: the request's arrival (performance.now()).
type Handler = (req: http.IncomingMessage, res: http.ServerResponse, params: Record<string, string>, query: URLSearchParams, started: number) => Promise<void> | void;

export async function startServer(options: ServeOptions): Promise<ServerHandle> {
  const name = options.name ?? 'alexnet';
  const host = options.host ?? '127.0.0.1';
  const maxBatch = options.maxBatch ?? 32;
  const maxDelayMs = options.maxDelayMs ?? 5;
  const reloadSeconds = options.reloadSeconds ?? 30;
  const defaultTopK = options.topK ?? 5;
  const crops = options.crops ?? 1;
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const maxQueue = options.maxQueue ?? DEFAULT_MAX_QUEUE;
  const graceMs = options.shutdownGraceMs ?? DEFAULT_SHUTDOWN_GRACE_MS;
  const headersTimeoutMs = options.headersTimeoutMs ?? DEFAULT_HEADERS_TIMEOUT_MS;
  const requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const keepAliveTimeoutMs = options.keepAliveTimeoutMs ?? DEFAULT_KEEP_ALIVE_TIMEOUT_MS;
  const log = (line: string) => (options.log ?? ((l: string) => console.error(`alexnet serve: ${l}`)))(scrubSecrets(line));
  if (crops !== 1 && crops !== 10) throw new RangeError(`crops must be 1 or 10, got ${String(crops)}`);
  if (!Number.isInteger(defaultTopK) || defaultTopK < 1) throw new RangeError(`topK must be an integer >= 1, got ${defaultTopK}`);
  if (!(reloadSeconds >= 0)) throw new RangeError(`reloadSeconds must be >= 0, got ${reloadSeconds}`);
  if (!Number.isInteger(maxBodyBytes) || maxBodyBytes < 1) throw new RangeError(`maxBodyBytes must be an integer >= 1, got ${maxBodyBytes}`);
  if (!Number.isInteger(maxQueue) || maxQueue < 1) throw new RangeError(`maxQueue must be an integer >= 1, got ${maxQueue}`);
  for (const [what, ms] of [['headersTimeoutMs', headersTimeoutMs], ['requestTimeoutMs', requestTimeoutMs], ['keepAliveTimeoutMs', keepAliveTimeoutMs]] as const) {
    if (!Number.isInteger(ms) || ms < 1) throw new RangeError(`${what} must be an integer >= 1, got ${ms}`);
  }
  if (headersTimeoutMs > requestTimeoutMs) throw new RangeError(`headersTimeoutMs (${headersTimeoutMs}) must not be over requestTimeoutMs (${requestTimeoutMs}): the headers are part of the request`);
  const source: ModelSource = { store: options.store, run: options.run, checkpoint: options.checkpoint, datasetName: options.datasetName, device: options.device, threads: options.threads, precision: options.precision };
  // The queue gauge reads the batcher (below) at each scrape.
  const metrics = serveMetrics({ defaultMetrics: options.defaultMetrics, queued: () => queue.queued });
  metrics.ready.set(0);

  let current: InferenceModel | undefined;
  let closing = false;
  let notReady = 'the model is loading';  // why /v2/health/ready answers 503 while no model serves
  const stopping = new AbortController();  // aborted by close(): ends the first load's retries
  const swap = (next: InferenceModel) => {
    current = next;
    metrics.modelInfo.reset();
    metrics.modelInfo.set({ model: name, version: next.checkpoint.key, run: next.checkpoint.runId, from: next.checkpoint.from, dataset: next.datasetName }, 1);
    metrics.ready.set(1);
  };

  // One scoreJobs call per batch, on the model the batch's requests were accepted for.
  // secondsPerImage: a moving average of a batch's time per image, for Retry-After.
  let secondsPerImage = 0;
  const queue = new Batcher<InferenceModel, Job, Scored>({
    maxBatch, maxDelayMs, maxInflight: options.maxInflight ?? ((options.device ?? defaultDevice()) === 'cuda' ? 2 : 1),
    run: async (model, jobs) => {
      const started = performance.now();
      const answers = await scoreJobs(model, jobs);
      const seconds = (performance.now() - started) / 1000;
      metrics.batchSize.observe(jobs.length);
      metrics.batchDuration.observe(seconds);
      secondsPerImage = secondsPerImage === 0 ? seconds / jobs.length : 0.8 * secondsPerImage + 0.2 * (seconds / jobs.length);
      const refused = answers.filter((a) => 'error' in a).length;
      metrics.images.inc({ outcome: 'classified' }, answers.length - refused);
      if (refused > 0) metrics.images.inc({ outcome: 'refused' }, refused);
      return answers;
    },
  });

  // The model a request is answered by, or 503.
  const servingModel = (params: Record<string, string>): InferenceModel => {
    if (params.name !== undefined && params.name !== name) throw new HttpError(404, `unknown model '${params.name}': this server serves '${name}'`);
    if (closing) throw new HttpError(503, `model '${name}' is not ready: the server is shutting down`, { Connection: 'close' });
    if (!current) throw new HttpError(503, `model '${name}' is not ready: ${notReady}`, { 'Retry-After': '1' });
    if (params.version !== undefined && params.version !== current.checkpoint.key) {
      throw new HttpError(404, `model '${name}' version '${params.version}' is not served; version ${current.checkpoint.key} is`);
    }
    return current;
  };

  // Jobs into the batcher, unless that would leave more than maxQueue images waiting.
  const classify = (model: InferenceModel, jobs: Job[]): Promise<Scored[]> => {
    if (jobs.length > maxQueue) throw tooManyImages(jobs.length, maxQueue);
    const waiting = queue.queued;
    if (waiting + jobs.length > maxQueue) {
      const retry = Math.max(1, Math.ceil((waiting + jobs.length) * secondsPerImage));
      throw new HttpError(503, `busy: ${waiting} images are waiting for a batch, the most this server queues is ${maxQueue} (--max-queue); retry in ${retry} s`, { 'Retry-After': String(retry) });
    }
    return queue.submit(model, jobs);
  };

  // An image file sent as the request body (/v1/classify, /predictions).
  const imageBody = async (req: http.IncomingMessage): Promise<Buffer> => {
    const body = await readBody(req, maxBodyBytes);
    if (/^multipart\/form-data/i.test(req.headers['content-type'] ?? '')) {
      throw new HttpError(400, 'send the image file itself as the request body (curl --data-binary @image.jpg, or -T image.jpg), not a multipart form');
    }
    if (body.length === 0) throw new HttpError(400, 'empty body: send the image file as the request body');
    return body;
  };

  const classes = (model: InferenceModel) => model.classIds.length;
  const metadata = (model: InferenceModel) => ({
    name,
    versions: [model.checkpoint.key],
    platform: 'alexnet_native',
    inputs: [
      { name: 'images', datatype: 'FP32', shape: [-1, 3, model.crop, model.crop] },
      { name: 'image', datatype: 'BYTES', shape: [-1] },
    ],
    outputs: [
      { name: 'probabilities', datatype: 'FP32', shape: [-1, classes(model)] },
      { name: 'classes', datatype: 'BYTES', shape: [-1, -1] },
      { name: 'names', datatype: 'BYTES', shape: [-1, -1] },
      { name: 'top', datatype: 'BYTES', shape: [-1] },
      { name: 'error', datatype: 'BYTES', shape: [-1] },
    ],
    parameters: {
      run: model.checkpoint.runId, checkpoint: model.checkpoint.key, from: model.checkpoint.from,
      dataset: model.datasetName, classes: classes(model), class_ids: model.classIds, class_names: model.classNames,
      image_size: model.imageSize, crop: model.crop, resize_kernel: model.resizeKernel,
      input: `"images" FP32 [N, 3, ${model.crop}, ${model.crop}]: RGB in 0..255, NCHW, the central ${model.crop}x${model.crop} patch of the image with its shorter side resized to ${model.imageSize} (${model.resizeKernel}) and centre-cropped to ${model.imageSize}x${model.imageSize}; the server subtracts the mean training image. "image" BYTES [N] (extension): the image files, base64-encoded`,
      crops, top_k: defaultTopK, max_batch_size: maxBatch, max_queue: maxQueue, device: model.net.device, loaded_at: model.loadedAt,
    },
  });

  const handlers: Record<string, Handler> = {
    classify: async (req, res, _params, query, started) => {
      const model = servingModel({});
      const topK = topKParameter(query.get('top') ?? undefined, 'top') ?? defaultTopK;
      const imageCrops = cropsParameter(query.get('crops'), 'crops') ?? crops;
      const [answer] = await classify(model, [{ kind: 'image', data: await imageBody(req), crops: imageCrops }]);
      if ('error' in answer) throw new HttpError(400, answer.error);
      const top = topClasses(answer.probabilities, 0, classes(model), topK, model);
      send(res, 200, { top, checkpoint: model.checkpoint.key, ms: Math.round((performance.now() - started) * 100) / 100 }, { 'X-Model-Version': model.checkpoint.key });
    },
    live: (_req, res) => send(res, 200, { live: true }),
    ready: (_req, res) => send(res, current && !closing ? 200 : 503, current && !closing ? { ready: true } : { ready: false, reason: closing ? 'the server is shutting down' : notReady }),
    server: (_req, res) => send(res, 200, { name: 'alexnet-temporal', version: VERSION, extensions: [] }),
    metadata: (_req, res, params) => send(res, 200, metadata(servingModel(params))),
    modelReady: (_req, res, params) => {
      servingModel(params);
      send(res, 200, { name, ready: true });
    },
    infer: async (req, res, params) => {
      const model = servingModel(params);
      const request = await readInferRequest(req, maxBodyBytes, { crop: model.crop, maxImages: maxQueue });
      const topK = request.topK ?? defaultTopK;
      let answers: Scored[];
      if (request.input.kind === 'tensor') {
        const { count, pixels } = request.input;
        const patch = 3 * model.crop * model.crop;
        answers = await classify(model, Array.from({ length: count }, (_, i): Job => ({ kind: 'tensor', pixels: pixels.subarray(i * patch, (i + 1) * patch) })));
      } else {
        const images = request.input.images;
        const readable = images.flatMap((img, i) => (typeof img === 'string' ? [] : [{ i, data: img }]));
        const results = await classify(model, readable.map((r): Job => ({ kind: 'image', data: r.data, crops })));
        answers = images.map((img) => ({ error: typeof img === 'string' ? img : '' }));
        readable.forEach((r, j) => { answers[r.i] = results[j]; });
        const refusedHere = images.length - readable.length;
        if (refusedHere > 0) metrics.images.inc({ outcome: 'refused' }, refusedHere);
        if (answers.every((a) => 'error' in a)) {
          throw new HttpError(400, answers.length === 1 ? (answers[0] as { error: string }).error : answers.map((a, i) => `image ${i}: ${(a as { error: string }).error}`).join('; '));
        }
      }
      send(res, 200, {
        model_name: name, model_version: model.checkpoint.key, ...(request.id !== undefined ? { id: request.id } : {}),
        outputs: inferOutputs(answers, model, topK, request.outputs),
      });
    },
    predictions: async (req, res, params, query) => {
      const model = servingModel(params);
      const topK = topKParameter(query.get('top_k') ?? undefined, 'top_k') ?? defaultTopK;
      const [answer] = await classify(model, [{ kind: 'image', data: await imageBody(req), crops }]);
      if ('error' in answer) throw new HttpError(400, answer.error);
      send(res, 200, topClasses(answer.probabilities, 0, classes(model), topK, model), { 'X-Model-Version': model.checkpoint.key });
    },
    ping: (_req, res) => send(res, current && !closing ? 200 : 503, { status: current && !closing ? 'Healthy' : 'Unhealthy' }),
    metrics: async (_req, res) => sendText(res, 200, await metrics.registry.metrics(), metrics.registry.contentType),
  };

  // [route label for metrics, methods, handler, patterns]
  const routes: [string, string[], Handler, string[]][] = [
    ['/v1/classify', ['POST'], handlers.classify, ['/v1/classify']],
    ['/v2/health/live', ['GET'], handlers.live, ['/v2/health/live']],
    ['/v2/health/ready', ['GET'], handlers.ready, ['/v2/health/ready']],
    ['/v2', ['GET'], handlers.server, ['/v2']],
    ['/v2/models/{name}', ['GET'], handlers.metadata, ['/v2/models/{name}', '/v2/models/{name}/versions/{version}']],
    ['/v2/models/{name}/ready', ['GET'], handlers.modelReady, ['/v2/models/{name}/ready', '/v2/models/{name}/versions/{version}/ready']],
    ['/v2/models/{name}/infer', ['POST'], handlers.infer, ['/v2/models/{name}/infer', '/v2/models/{name}/versions/{version}/infer']],
    ['/predictions/{name}', ['POST', 'PUT'], handlers.predictions, ['/predictions/{name}', '/predictions/{name}/{version}']],
    ['/ping', ['GET'], handlers.ping, ['/ping']],
    ['/metrics', ['GET'], handlers.metrics, ['/metrics']],
  ];
  const compiled = routes.map(([label, methods, handler, patterns]) => ({ label, methods, handler, patterns: patterns.map((p) => p.split('/').slice(1)) }));

  // Responses not yet finished: told to close their connection once the server closes.
  const inflight = new Set<http.ServerResponse>();
  // The response being answered on each connection (clientError answers only where none was sent).
  const answering = new WeakMap<object, http.ServerResponse>();
  const onRequest = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const started = performance.now();
    let route = 'unmatched';
    metrics.inflight.inc();
    inflight.add(res);
    answering.set(req.socket, res);
    res.once('close', () => {
      inflight.delete(res);
      if (answering.get(req.socket) === res) answering.delete(req.socket);
      metrics.inflight.dec();
      // An answer never sent: the request never arrived whole (408: its timeout, or its client
      // went while sending it), or its client went before the answer (499).
      const code = res.writableEnded ? res.statusCode : req.complete ? 499 : 408;
      metrics.requests.inc({ route, code: String(code) });
      metrics.latency.observe({ route }, (performance.now() - started) / 1000);
    });
    if (closing) res.setHeader('Connection', 'close');
    try {
      const url = new URL(req.url ?? '/', 'http://localhost');
      let segments: string[];
      try {
        segments = url.pathname.replace(/\/+$/, '').split('/').slice(1).map(decodeURIComponent);
      } catch {
        throw new HttpError(400, `malformed path ${url.pathname}`);
      }
      const method = req.method === 'HEAD' ? 'GET' : req.method ?? 'GET';
      for (const r of compiled) {
        const params = r.patterns.map((p) => matchPattern(p, segments)).find((m) => m !== undefined);
        if (!params) continue;
        route = r.label;
        if (!r.methods.includes(method)) throw new HttpError(405, `${req.method} is not allowed on ${url.pathname}; use ${r.methods.join(' or ')}`, { Allow: r.methods.join(', ') });
        await r.handler(req, res, params, url.searchParams, started);
        return;
      }
      throw new HttpError(404, `no route ${req.method} ${url.pathname}`);
    } catch (e) {
      // Refused before its body was read: the connection closes rather than Node reading
      // (and dropping) however much more the client sends.
      const unread = !req.complete && (Number(req.headers['content-length']) > 0 || req.headers['transfer-encoding'] !== undefined);
      const close: Record<string, string> = unread ? { Connection: 'close' } : {};
      if (res.headersSent || req.socket.destroyed) {
        res.destroy();
      } else if (e instanceof HttpError) {
        send(res, e.status, { error: scrubSecrets(e.message) }, { ...e.headers, ...close });
      } else {
        log(`500 on ${req.method} ${req.url}: ${message(e)}`);
        send(res, 500, { error: message(e) }, close);
      }
    }
  };

  const connectionsCheckingInterval = Math.max(1, Math.min(CONNECTIONS_CHECK_MS, Math.floor(Math.min(headersTimeoutMs, requestTimeoutMs) / 4)));
  const server = http.createServer({ headersTimeout: headersTimeoutMs, requestTimeout: requestTimeoutMs, connectionsCheckingInterval }, (req, res) => void onRequest(req, res));
  server.keepAliveTimeout = keepAliveTimeoutMs;
  // A request Node refuses before or while it arrives (too slow: its header and request
  // timeouts; malformed) gets a JSON answer, where nothing was answered on the connection
  // yet, and the connection closes.
  server.on('clientError', (err: NodeJS.ErrnoException, socket: net.Socket) => {
    if (err.code === 'ECONNRESET' || !socket.writable || answering.get(socket)?.headersSent) {
      socket.destroy();
      return;
    }
    const timedOut = err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
    const status = timedOut ? 408 : err.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
    const text = JSON.stringify({
      error: timedOut
        ? `the request did not arrive in time: its headers must arrive within ${headersTimeoutMs} ms (--headers-timeout), all of it within ${requestTimeoutMs} ms (--request-timeout)`
        : `malformed HTTP request (${err.code ?? 'unknown'})`,
    });
    socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`, () => socket.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 8080, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port ?? 8080;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  const periodic = reloadSeconds > 0 && !options.checkpoint;
  log(`listening on ${url} (${url}/v1/classify, KServe v2 ${url}/v2/models/${name}/infer, TorchServe ${url}/predictions/${name}, ${url}/metrics; batches of up to ${maxBatch} images within ${maxDelayMs} ms, at most ${maxQueue} waiting; ${periodic ? `re-resolving the checkpoint every ${reloadSeconds}s` : 'no periodic reload'})`);

  // The first model: retried while it fails for a reason that may pass (worthRetrying), until
  // close(). notReady says meanwhile why the server is not ready.
  const what = options.checkpoint ? `checkpoint ${options.checkpoint}` : `run ${options.run}`;
  const closedFirst = () => new Error('the server closed before a model was loaded');
  const loading = (async () => {
    const t0 = performance.now();
    let failed = '';  // the last attempt's failure, for notReady
    for (let attempt = 1, delay = LOAD_RETRY_FIRST_MS; ; attempt++, delay = Math.min(2 * delay, LOAD_RETRY_MAX_MS)) {
      notReady = `loading the model of ${what} from ${options.store}: attempt ${attempt} since ${new Date().toISOString()}${failed}`;
      log(attempt === 1 ? `loading the model of ${what} from ${options.store}` : `loading the model of ${what}: attempt ${attempt}`);
      try {
        const model = await abortable(loadInferenceModel(source), stopping.signal);
        swap(model);
        log(`serving ${describeModel(model)} as '${name}' on ${model.net.device}, loaded in ${((performance.now() - t0) / 1000).toFixed(1)}s`);
        return;
      } catch (e) {
        if (stopping.signal.aborted) throw closedFirst();
        if (!worthRetrying(e)) throw e;
        const reason = message(e);
        failed = `; attempt ${attempt} failed: ${reason}`;
        notReady = `loading the model of ${what} from ${options.store}: attempt ${attempt} failed: ${reason}; attempt ${attempt + 1} at ${new Date(Date.now() + delay).toISOString()}`;
        log(`could not load the model (attempt ${attempt}; trying again in ${delay / 1000} s): ${reason}`);
      }
      try {
        await sleep(delay, undefined, { signal: stopping.signal, ref: false });
      } catch {
        throw closedFirst();
      }
    }
  })();
  loading.catch((e) => {
    if (stopping.signal.aborted) return;
    notReady = `the model could not be loaded: ${message(e)}`;
    log(`could not load the model: ${message(e)}`);
  });

  // Reloads run one at a time; callers arriving while one runs share the next one.
  let chain: Promise<unknown> = loading.catch(() => undefined);
  let queued: Promise<ReloadResult> | undefined;
  let queuedTrigger = 'timer';
  // The periodic check logs a failure once per reason, and its end.
  let lastFailure: string | undefined;
  const reloadOnce = async (trigger: string): Promise<ReloadResult> => {
    const previous = current;
    try {
      const resolved = await resolveCheckpoint(openStore(options.store), source);
      if (previous && resolved.key === previous.checkpoint.key && resolved.from === previous.checkpoint.from) {
        metrics.reloads.inc({ result: 'unchanged' });
        if (trigger !== 'timer' || lastFailure !== undefined) log(`reload (${trigger}): ${resolved.key} (${resolved.from}) still serves${lastFailure !== undefined ? '; the reload failure is over' : ''}`);
        lastFailure = undefined;
        return { result: 'unchanged', checkpoint: previous.checkpoint };
      }
      log(`reload (${trigger}): ${resolved.key} (${resolved.from}) ${previous ? `replaces ${previous.checkpoint.key} (${previous.checkpoint.from})` : 'is new'}; loading it in the background`);
      const t0 = performance.now();
      const next = await loadInferenceModel(source);
      if (closing) return { result: 'unchanged', checkpoint: previous?.checkpoint };
      swap(next);
      lastFailure = undefined;
      metrics.reloads.inc({ result: 'changed' });
      log(`serving ${describeModel(next)}, loaded in ${((performance.now() - t0) / 1000).toFixed(1)}s`);
      return { result: 'changed', checkpoint: next.checkpoint, previous: previous?.checkpoint };
    } catch (e) {
      const reason = message(e);
      metrics.reloads.inc({ result: 'failed' });
      if (trigger !== 'timer' || reason !== lastFailure) {
        log(`reload (${trigger}) failed; ${previous ? `still serving ${previous.checkpoint.key}` : 'no model loaded'}: ${reason}${trigger === 'timer' ? ' (not logged again until the reason changes)' : ''}`);
      }
      lastFailure = reason;
      return { result: 'failed', checkpoint: previous?.checkpoint, error: reason };
    }
  };
  const reload = (trigger = 'requested'): Promise<ReloadResult> => {
    if (queued) {
      if (trigger !== 'timer') queuedTrigger = trigger;  // a SIGHUP joining the timer's: logged as the SIGHUP
      return queued;
    }
    queuedTrigger = trigger;
    const next = chain.then(() => {
      queued = undefined;
      return reloadOnce(queuedTrigger);
    });
    queued = next;
    chain = next;
    return next;
  };
  const timer = periodic ? setInterval(() => void reload('timer'), reloadSeconds * 1000).unref() : undefined;

  let closed: Promise<void> | undefined;
  const close = () => {
    closed ??= (async () => {
      closing = true;
      stopping.abort();
      metrics.ready.set(0);
      if (timer) clearInterval(timer);
      queue.flushNow();
      for (const res of inflight) if (!res.headersSent) res.setHeader('Connection', 'close');
      const t0 = performance.now();
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          log(`requests still in flight after ${graceMs} ms: closing their connections`);
          server.closeAllConnections();
        }, graceMs).unref();
        server.close(() => {
          clearTimeout(force);
          resolve();
        });
        server.closeIdleConnections();
      });
      log(`stopped: every request answered (drained in ${Math.round(performance.now() - t0)} ms)`);
    })();
    return closed;
  };

  return { url, ready: loading, model: () => current, reload, metrics, close };
}
