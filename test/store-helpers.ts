// The object-store tests' shared parts (store.test.ts, store-local.test.ts,
// store-s3.test.ts): the backends, each with how to make a fresh store and how to
// register a case for it, MinIO started once per test file for the S3 cases, a proxy
// in front of it that fails on purpose, and deterministic bodies and streams.
import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'crypto';
import * as http from 'http';
import { Readable } from 'stream';

import { inLanes } from '../common/lanes';
import { compareKeys, LocalStore, openStore, type ObjectInfo, type ObjectStore, type OpenStoreOptions } from '../activities/store/index';
import { binaryPath, type MinioService } from '../infra/services';
import { tmpDir } from './helpers';
import { startS3, type S3Fixture } from './temporal-helpers';

// Node 20 is what we run; the SDK's notice about its future Node 22 minimum is noise here.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

export const MiB = 1 << 20;
export const BUCKET = 'alexnet-store-test';

export async function collect(it: AsyncIterable<ObjectInfo>): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = [];
  for await (const o of it) out.push(o);
  return out;
}

export async function readAll(s: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

// Deterministic bytes, cheap to make in any size.
export function bytes(n: number, seed = 1): Buffer {
  const b = Buffer.alloc(n);
  let x = seed * 2654435761 >>> 0;
  for (let i = 0; i < n; i += 4) {
    x = (x ^ (x << 13)) >>> 0; x = (x ^ (x >>> 17)) >>> 0; x = (x ^ (x << 5)) >>> 0;
    b.writeUInt32LE(x, i < n - 3 ? i : n - 4);
  }
  return b;
}

// A stream of buf in chunks, optionally pausing between them or failing after some.
export function chunked(buf: Buffer, chunk: number, opts: { delayMs?: number; failAfter?: number } = {}): Readable {
  async function* gen(): AsyncGenerator<Buffer> {
    for (let off = 0, i = 0; off < buf.length; off += chunk, i++) {
      if (opts.failAfter !== undefined && i === opts.failAfter) throw new Error('source failed on purpose');
      if (opts.delayMs) await new Promise((r) => setTimeout(r, opts.delayMs));
      yield buf.subarray(off, Math.min(buf.length, off + chunk));
    }
  }
  return Readable.from(gen());
}

// fn for every item, at most `width` at once (common/lanes.ts).
export const pool = <T>(items: T[], width: number, fn: (item: T) => Promise<void>): Promise<void> =>
  inLanes(items.length, width, (i) => fn(items[i]));

export const sorted = (keys: string[]) => [...keys].sort(compareKeys);

// A proxy in front of MinIO that answers the first `failures` requests with 503 SlowDown,
// as S3 does under load. The Host header passes through unchanged, so signatures hold.
export async function flakyProxy(target: string, failures: number): Promise<{ endpoint: string; requests: () => number; close: () => Promise<void> }> {
  let seen = 0;
  const upstream = new URL(target);
  const server = http.createServer((req, res) => {
    if (seen++ < failures) {
      req.resume();
      res.writeHead(503, { 'content-type': 'application/xml' });
      res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>');
      return;
    }
    const out = http.request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    out.on('error', () => res.destroy());
    req.pipe(out);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests: () => seen,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

// ---------------------------------------------------------------- backends

export interface Backend {
  name: 'local' | 's3';
  // A fresh, empty store for one test (its own folder or S3 prefix). On S3, options go to
  // openStore: options.endpoint replaces MinIO's (a flakyProxy in front of it, say).
  fresh(t: ExecutionContext, options?: OpenStoreOptions): ObjectStore;
  // Registers a case titled `<name>: <title>` that runs on this backend.
  test(title: string, fn: (t: ExecutionContext) => Promise<void>): void;
}

export const local: Backend = {
  name: 'local',
  fresh: () => new LocalStore(tmpDir('alexnet-store-')),
  test: (title, fn) => test(`local: ${title}`, fn),
};

// MinIO (startS3: bucket BUCKET, the AWS environment set) runs for the test file once it
// registers an S3 case. Where MinIO is not installed the S3 cases fail, naming what is
// missing, unless ALEXNET_SKIP_S3_TESTS=1 says to skip them (a machine without Go, say):
// then they are registered as skipped, and the reason is printed once.
const minioMissing = ((): string | undefined => {
  try {
    binaryPath('minio');
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
})();
const skipS3 = minioMissing !== undefined && process.env.ALEXNET_SKIP_S3_TESTS === '1';
let s3Fixture: S3Fixture | undefined;
let minioHooked = false;

function startMinioForFile(): void {
  if (minioHooked) return;
  minioHooked = true;
  if (skipS3) {
    console.log(`S3 cases skipped (ALEXNET_SKIP_S3_TESTS=1): ${minioMissing}`);
    return;
  }
  test.before(async () => {
    if (minioMissing === undefined) s3Fixture = await startS3(BUCKET, tmpDir('alexnet-store-minio-'));
  });
  test.after.always(async () => {
    await s3Fixture?.stop();
  });
}

// The running MinIO of this file (an S3 case fails before its body runs where there is none).
export function minio(): MinioService {
  if (!s3Fixture) throw new Error('MinIO is not running');
  return s3Fixture.minio;
}

// Registers an S3 case; `m` is the running MinIO.
export function s3Test(title: string, fn: (t: ExecutionContext, m: MinioService) => Promise<void>): void {
  startMinioForFile();
  (skipS3 ? test.skip : test)(`s3: ${title}`, async (t) => {
    if (!s3Fixture) {
      t.fail(`MinIO unavailable: ${minioMissing ?? 'not started'}`);
      return;
    }
    await fn(t, s3Fixture.minio);
  });
}

export const s3: Backend = {
  name: 's3',
  fresh: (t, options = {}) => {
    const id = t.title.replace(/[^a-z0-9]+/gi, '-').slice(0, 60) + '-' + randomBytes(3).toString('hex');
    return openStore(`s3://${BUCKET}/t/${id}`, { endpoint: minio().endpoint, ...options });
  },
  test: (title, fn) => s3Test(title, (t) => fn(t)),
};
