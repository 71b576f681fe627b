// alexnet serve: a trained run's model over HTTP (POST /v1/classify, KServe v2 / Open
// Inference Protocol and TorchServe routes, Prometheus metrics), with dynamic batching,
// limits on bodies, the queue and slow clients, and hot reload (scripts/serve/). Reloads on
// SIGHUP; SIGTERM or SIGINT stops accepting, answers the requests in flight and exits 0.
import { sizeDecodeThreadpool } from '../../activities/decode-image';
import { DEVICES, PRECISIONS, type Device, type Precision } from '../../native/index';
import { MAX_JSON_DEPTH } from '../serve/protocol';
import {
  DEFAULT_HEADERS_TIMEOUT_MS, DEFAULT_KEEP_ALIVE_TIMEOUT_MS, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_QUEUE, DEFAULT_REQUEST_TIMEOUT_MS, DEFAULT_SHUTDOWN_GRACE_MS, startServer,
} from '../serve/server';
import { intOption, numberOption, parse, UsageError } from './args';

// How long after the grace period a stopping server is given before the process exits anyway.
const STOP_MARGIN_MS = 5000;

const seconds = (ms: number) => ms / 1000;
// A timeout flag in seconds (fractions allowed), as milliseconds.
const timeoutMs = (value: string | undefined, flag: string, fallbackMs: number) => Math.max(1, Math.round(1000 * numberOption(value, flag, seconds(fallbackMs))));

const HELP = `usage: alexnet serve --store URI (--run RUN_ID | --checkpoint KEY) [--name alexnet]
                     [--host 127.0.0.1] [--port 8080] [--device cpu|cuda] [--threads N] [--precision fp32|bf16|tf32]
                     [--max-batch 32] [--max-delay-ms 5] [--max-queue ${DEFAULT_MAX_QUEUE}] [--max-body 20m]
                     [--headers-timeout ${seconds(DEFAULT_HEADERS_TIMEOUT_MS)}] [--request-timeout ${seconds(DEFAULT_REQUEST_TIMEOUT_MS)}] [--keep-alive-timeout ${seconds(DEFAULT_KEEP_ALIVE_TIMEOUT_MS)}]
                     [--reload-seconds 30] [--top 5] [--crops 1|10] [--dataset-name NAME]

Serves a trained run's model over HTTP. The model is the run's promoted checkpoint
(runs/RUN_ID/serving.json), else its newest (latest.json), or --checkpoint KEY; its classes
and preprocessing are evaluation's, as in alexnet classify. Stateless: run any number
behind a load balancer. --precision bf16 feeds the GEMMs bf16 (on the CPU through
AVX512_BF16 where it has it; /v2/models/NAME's device says which), fp32 by default.

Routes (NAME = --name):
  POST /v1/classify                the image file as the body (JPEG, PNG, WebP...; ?top=5&crops=1|10)
                                   -> {"top": [{"class", "name", "probability"}...], "checkpoint", "ms"}
  GET  /v2/health/live, /v2/health/ready, /v2/models/NAME, /v2/models/NAME/ready
  POST /v2/models/NAME/infer       KServe v2 / Open Inference Protocol: {"inputs": [{"name": "images",
                                   "datatype": "FP32", "shape": [N, 3, crop, crop], "data": [...]}]}, the
                                   centre crop in 0..255 RGB (the server subtracts the mean image;
                                   /v2/models/NAME says S, crop and the resize kernel); outputs
                                   "probabilities" FP32 [N, classes], "classes"/"names" BYTES [N, top_k].
                                   Extension: input "image", BYTES [N], base64 image files
  POST /predictions/NAME           TorchServe: the image file as the body (?top_k=5)
  GET  /ping, /metrics             TorchServe health; Prometheus metrics

--max-batch, --max-delay-ms: requests arriving while a batch runs wait up to the delay for
  company and are classified together, up to that many images (an idle server starts at once).
--max-queue: more images than this waiting for a batch: 503 with Retry-After.
--max-body: larger request bodies are refused with 413 (bytes, or with k, m, g: KiB, MiB, GiB).
  An infer request declaring or holding more images than --max-queue is refused with 413
  as soon as its bytes show it; JSON nested deeper than ${MAX_JSON_DEPTH} arrays and objects with 400.
--headers-timeout, --request-timeout (seconds): a request's headers must arrive within the
  first, all of it within the second, else 408 and the connection closes; a connection that
  sends nothing closes after the first. --keep-alive-timeout: an idle connection closes
  this many seconds (and Node's 1 s) after its last answer.
--reload-seconds: how often to re-resolve the run's checkpoint (0: only on SIGHUP); a new
  one is loaded in the background and swapped in between batches; a failing reload keeps the old one.
  A first load failing for a passing reason (a store timeout, network, 5xx) is retried
  every 1 s doubling to 60 s, /v2/health/ready saying why; one that cannot pass (no such
  run or checkpoint) ends the command (exit 1).
--port 0 takes a free port; the URL is printed on stderr ("listening on http://...").
--top: classes per image unless a request asks (top, top_k). --crops 10: the paper's ten patches.

SIGHUP reloads now; SIGTERM/SIGINT stop accepting, answer the requests in flight (for at most
${seconds(DEFAULT_SHUTDOWN_GRACE_MS)} s) and exit 0, even with a store request hanging.`;

// A size in bytes: 1048576, 512k, 20m, 1g (powers of 1024; an optional trailing 'b' or 'ib').
export function sizeOption(value: string | undefined, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  const m = /^(\d+(?:\.\d+)?)\s*(?:([kmg])(?:i?b)?|b)?$/i.exec(value.trim());
  const bytes = m ? Math.floor(Number(m[1]) * 1024 ** (m[2] ? 'kmg'.indexOf(m[2].toLowerCase()) + 1 : 0)) : NaN;
  if (!(bytes >= 1) || !Number.isSafeInteger(bytes)) throw new UsageError(`--${flag} must be a size in bytes such as 1048576, 512k or 20m, got '${value}'`);
  return bytes;
}

export async function serve(argv: string[]): Promise<void> {
  const o = parse(argv, {
    store: { type: 'string' }, run: { type: 'string' }, checkpoint: { type: 'string' }, 'dataset-name': { type: 'string' },
    name: { type: 'string' }, host: { type: 'string' }, port: { type: 'string' }, device: { type: 'string' }, threads: { type: 'string' }, precision: { type: 'string' },
    'max-batch': { type: 'string' }, 'max-delay-ms': { type: 'string' }, 'max-queue': { type: 'string' }, 'max-body': { type: 'string' }, 'reload-seconds': { type: 'string' },
    'headers-timeout': { type: 'string' }, 'request-timeout': { type: 'string' }, 'keep-alive-timeout': { type: 'string' },
    top: { type: 'string' }, crops: { type: 'string' },
  }, HELP);
  if (!o.store) throw new UsageError(`missing --store\n\n${HELP}`);
  if (!o.run && !o.checkpoint) throw new UsageError(`give --run RUN_ID or --checkpoint KEY\n\n${HELP}`);
  const crops = intOption(o.crops, 'crops', 1);
  if (crops !== 1 && crops !== 10) throw new UsageError(`--crops must be 1 or 10, got ${crops}`);
  const device = (o.device ?? 'cpu') as Device;
  if (!DEVICES.includes(device)) throw new UsageError(`--device must be one of ${DEVICES.join(', ')}, got '${o.device}'`);
  const precision = o.precision as Precision | undefined;
  if (precision !== undefined && !PRECISIONS.includes(precision)) throw new UsageError(`--precision must be one of ${PRECISIONS.join(', ')}, got '${o.precision}'`);
  if (precision === 'tf32' && device !== 'cuda') throw new UsageError("--precision tf32 needs --device cuda (the CPU takes fp32 or bf16)");
  const name = o.name ?? 'alexnet';
  if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new UsageError(`--name must be letters, digits, '.', '_' or '-', got '${name}'`);
  const port = intOption(o.port, 'port', 8080, 0);
  if (port > 65535) throw new UsageError(`--port must be at most 65535, got ${port}`);
  const headersTimeoutMs = timeoutMs(o['headers-timeout'], 'headers-timeout', DEFAULT_HEADERS_TIMEOUT_MS);
  const requestTimeoutMs = timeoutMs(o['request-timeout'], 'request-timeout', DEFAULT_REQUEST_TIMEOUT_MS);
  if (headersTimeoutMs > requestTimeoutMs) throw new UsageError(`--headers-timeout (${o['headers-timeout'] ?? seconds(DEFAULT_HEADERS_TIMEOUT_MS)}) must not be over --request-timeout (${o['request-timeout'] ?? seconds(DEFAULT_REQUEST_TIMEOUT_MS)}): the headers are part of the request`);

  sizeDecodeThreadpool();  // before anything uses libuv's pool
  const server = await startServer({
    store: o.store, run: o.run, checkpoint: o.checkpoint, datasetName: o['dataset-name'], device, precision,
    threads: o.threads === undefined ? undefined : intOption(o.threads, 'threads', 1),
    name, host: o.host ?? '127.0.0.1', port,
    maxBatch: intOption(o['max-batch'], 'max-batch', 32),
    maxDelayMs: intOption(o['max-delay-ms'], 'max-delay-ms', 5, 0),
    maxQueue: intOption(o['max-queue'], 'max-queue', DEFAULT_MAX_QUEUE),
    maxBodyBytes: sizeOption(o['max-body'], 'max-body', DEFAULT_MAX_BODY_BYTES),
    reloadSeconds: intOption(o['reload-seconds'], 'reload-seconds', 30, 0),
    headersTimeoutMs, requestTimeoutMs, keepAliveTimeoutMs: timeoutMs(o['keep-alive-timeout'], 'keep-alive-timeout', DEFAULT_KEEP_ALIVE_TIMEOUT_MS),
    shutdownGraceMs: DEFAULT_SHUTDOWN_GRACE_MS,
    topK: intOption(o.top, 'top', 5),
    crops,
  });

  const onHup = () => void server.reload('SIGHUP');
  process.on('SIGHUP', onHup);
  let forced = false;
  const stopped = new Promise<NodeJS.Signals>((resolve) => {
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.on(signal, () => {
        if (forced) process.exit(1);
        forced = true;
        resolve(signal);
      });
    }
  });
  try {
    // A first model that cannot be loaded ends the command (exit 1) with the reason.
    await Promise.race([server.ready, stopped]);
    const signal = await stopped;
    console.error(`alexnet serve: ${signal}: no longer accepting; answering the requests in flight (again to force)`);
    // close() ends by the grace period (it then closes the connections left); this is for
    // anything else that would keep it from ending.
    setTimeout(() => {
      console.error(`alexnet serve: still stopping ${seconds(DEFAULT_SHUTDOWN_GRACE_MS + STOP_MARGIN_MS)} s after ${signal}: exiting`);
      process.exit(1);
    }, DEFAULT_SHUTDOWN_GRACE_MS + STOP_MARGIN_MS).unref();
  } finally {
    await server.close();
    process.off('SIGHUP', onHup);
  }
  // Every request answered. Exit rather than wait for the event loop to empty: a store
  // request of a model load may never end (an endpoint that accepts and never answers).
  process.exit(0);
}
