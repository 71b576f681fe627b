// The object store: one behavioural suite run alike against LocalStore (a temporary
// folder) and S3Store on a real MinIO server (infra/services.ts), plus the checks only
// one side has: atomic local writes seen by a concurrent reader, no escape from the
// local root, checksums and aborted multipart uploads on S3, secrets kept out of
// URIs and error messages.
import test, { type ExecutionContext } from 'ava';
import { spawnSync } from 'child_process';
import { createHash, createHmac, randomBytes } from 'crypto';
import * as fs from 'fs';
import * as http from 'http';
import * as path from 'path';
import { Readable } from 'stream';
import { inspect } from 'util';
import {
  AbortMultipartUploadCommand, CreateBucketCommand, CreateMultipartUploadCommand, HeadObjectCommand, ListMultipartUploadsCommand,
} from '@aws-sdk/client-s3';

import {
  compareKeys, InvalidKeyError, InvalidStoreUriError, joinKey, LocalStore, ObjectNotFoundError, openStore,
  S3Store, type ObjectInfo, type ObjectStore, type OpenStoreOptions,
} from '../activities/store/index';
import { TMP_MARKER } from '../activities/store/local';
import { binaryPath, startMinio, type MinioService } from '../infra/services';
import { ROOT, tmpDir } from './helpers';

// Node 20 is what we run; the SDK's notice about its future Node 22 minimum is noise here.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

const MiB = 1 << 20;
const BUCKET = 'alexnet-store-test';

// ---------------------------------------------------------------- helpers

async function collect(it: AsyncIterable<ObjectInfo>): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = [];
  for await (const o of it) out.push(o);
  return out;
}

async function readAll(s: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

// Deterministic bytes, cheap to make in any size.
function bytes(n: number, seed = 1): Buffer {
  const b = Buffer.alloc(n);
  let x = seed * 2654435761 >>> 0;
  for (let i = 0; i < n; i += 4) {
    x = (x ^ (x << 13)) >>> 0; x = (x ^ (x >>> 17)) >>> 0; x = (x ^ (x << 5)) >>> 0;
    b.writeUInt32LE(x, i < n - 3 ? i : n - 4);
  }
  return b;
}

// A stream of buf in chunks, optionally pausing between them or failing after some.
function chunked(buf: Buffer, chunk: number, opts: { delayMs?: number; failAfter?: number } = {}): Readable {
  async function* gen(): AsyncGenerator<Buffer> {
    for (let off = 0, i = 0; off < buf.length; off += chunk, i++) {
      if (opts.failAfter !== undefined && i === opts.failAfter) throw new Error('source failed on purpose');
      if (opts.delayMs) await new Promise((r) => setTimeout(r, opts.delayMs));
      yield buf.subarray(off, Math.min(buf.length, off + chunk));
    }
  }
  return Readable.from(gen());
}

async function pool<T>(items: T[], width: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < items.length) await fn(items[next++]);
  }));
}

const sorted = (keys: string[]) => [...keys].sort(compareKeys);

// ---------------------------------------------------------------- backends

// Temporary folders (17 MiB bodies, MinIO's data) are removed when the file is done.
const tmpDirs: string[] = [];
function tmp(prefix = 'alexnet-store-'): string {
  const dir = tmpDir(prefix);
  tmpDirs.push(dir);
  return dir;
}

interface Backend {
  name: string;
  // A fresh, empty store for one test (its own folder or S3 prefix).
  fresh(t: ExecutionContext, options?: OpenStoreOptions): ObjectStore;
}

const local: Backend = {
  name: 'local',
  fresh: () => new LocalStore(tmp()),
};

let minio: MinioService | undefined;
let minioSkip: string | undefined;
const s3: Backend = {
  name: 's3',
  fresh: (t, options = {}) => {
    if (!minio) throw new Error('MinIO is not running');
    const id = t.title.replace(/[^a-z0-9]+/gi, '-').slice(0, 60) + '-' + randomBytes(3).toString('hex');
    return openStore(`s3://${BUCKET}/t/${id}`, { endpoint: minio.endpoint, ...options });
  },
};

test.before(async () => {
  try {
    binaryPath('minio');
  } catch (e) {
    minioSkip = (e as Error).message;
    return;
  }
  minio = await startMinio({ dir: tmp('alexnet-store-minio-') });
  // The store reads credentials only from the standard chain: give them as AWS env vars.
  process.env.AWS_ACCESS_KEY_ID = minio.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = minio.secretAccessKey;
  process.env.AWS_REGION = minio.region;
  for (const v of ['AWS_PROFILE', 'AWS_SESSION_TOKEN', 'AWS_ENDPOINT_URL', 'AWS_ENDPOINT_URL_S3']) delete process.env[v];
  const client = (openStore(`s3://${BUCKET}`, { endpoint: minio.endpoint }) as S3Store).client;
  await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
});

test.after.always(async () => {
  await minio?.stop();
  for (const dir of tmpDirs) fs.rmSync(dir, { recursive: true, force: true });
});

// S3 tests fail loudly when MinIO is not installed, unless ALEXNET_SKIP_S3_TESTS=1 says
// to skip them (a machine without Go, say).
function needsMinio(t: ExecutionContext): MinioService | undefined {
  if (minio) return minio;
  if (process.env.ALEXNET_SKIP_S3_TESTS === '1') { t.log(`skipped: ${minioSkip}`); t.pass(); } else t.fail(`MinIO unavailable: ${minioSkip}`);
  return undefined;
}

// Registers the same test for each backend.
function both(title: string, fn: (t: ExecutionContext, b: Backend) => Promise<void>): void {
  for (const b of [local, s3]) {
    test(`${b.name}: ${title}`, async (t) => {
      if (b === s3 && !needsMinio(t)) return;
      await fn(t, b);
    });
  }
}

function s3Only(title: string, fn: (t: ExecutionContext, m: MinioService) => Promise<void>): void {
  test(`s3: ${title}`, async (t) => {
    const m = needsMinio(t);
    if (m) await fn(t, m);
  });
}

// ---------------------------------------------------------------- shared behaviour

both('put, get, head, overwrite and delete', async (t, b) => {
  const store = b.fresh(t);
  await store.put('a.txt', 'hello');
  await store.put('dir/b.bin', Buffer.from([0, 1, 2, 255]));
  await store.put('dir/sub/c', new Uint8Array([7, 8, 9]));
  await store.put('empty', '');
  t.is((await store.get('a.txt')).toString(), 'hello');
  t.deepEqual(await store.get('dir/b.bin'), Buffer.from([0, 1, 2, 255]));
  t.deepEqual(await store.get('dir/sub/c'), Buffer.from([7, 8, 9]));
  t.is((await store.get('empty')).length, 0);
  t.deepEqual(await readAll(await store.getStream('dir/b.bin')), Buffer.from([0, 1, 2, 255]));
  t.deepEqual(await store.head('a.txt'), { key: 'a.txt', size: 5 });
  t.deepEqual(await store.head('empty'), { key: 'empty', size: 0 });
  t.is(await store.head('missing'), undefined);
  t.is(await store.head('dir'), undefined, 'a folder of keys is not an object');
  await store.put('a.txt', 'hello again');
  t.is((await store.get('a.txt')).toString(), 'hello again');
  await store.delete('a.txt');
  t.is(await store.head('a.txt'), undefined);
  await store.delete('a.txt'); // absent: no error
  await store.delete('never/was/there');
  t.is((await store.get('dir/sub/c')).length, 3);
});

both('ObjectNotFoundError names the key and the store', async (t, b) => {
  const store = b.fresh(t);
  for (const read of [() => store.get('no/such/key'), () => store.getStream('no/such/key')]) {
    const err = await t.throwsAsync(read, { instanceOf: ObjectNotFoundError });
    t.is(err?.key, 'no/such/key');
    t.is(err?.storeUri, store.uri);
    t.true(err?.message.includes('no/such/key') && err.message.includes(store.uri));
  }
});

both('putStream of a >16 MiB body (multipart on S3) reads back byte-identical', async (t, b) => {
  const store = b.fresh(t);
  const body = bytes(17 * MiB + 12345, 3);
  await store.putStream('big/blob.bin', chunked(body, 256 * 1024), body.length);
  t.deepEqual(await store.head('big/blob.bin'), { key: 'big/blob.bin', size: body.length });
  t.true((await store.get('big/blob.bin')).equals(body));
  t.true((await readAll(await store.getStream('big/blob.bin'))).equals(body));
  // A small stream (a single PutObject on S3) and no size given.
  await store.putStream('small', chunked(Buffer.from('tiny body'), 3));
  t.is((await store.get('small')).toString(), 'tiny body');
});

both('putStream that fails keeps the old object and leaves nothing behind', async (t, b) => {
  const store = b.fresh(t);
  await store.put('k', 'old');
  const body = bytes(12 * MiB, 5);
  // The source breaks after ~10 MiB: on S3 a multipart upload is under way by then.
  await t.throwsAsync(store.putStream('k', chunked(body, MiB, { failAfter: 10 })), { message: /source failed on purpose/ });
  await t.throwsAsync(store.putStream('k', chunked(body, MiB), body.length + 1), { message: /expected .* bytes/ });
  await t.throwsAsync(store.putStream('new', chunked(body, MiB, { failAfter: 7 })));
  t.is((await store.get('k')).toString(), 'old');
  t.is(await store.head('new'), undefined);
  t.deepEqual((await collect(store.list(''))).map((o) => o.key), ['k']);
});

// Keys chosen so that folder walking, UTF-16 and UTF-8 orders would all disagree.
const ORDER_KEYS = ['a-b', 'a/c', 'a/c/d', 'a0', 'a', 'b/x', 'b.txt', 'é', 'z', '\u{ff5a}', '\u{1f600}', 'A', '_', 'a/b-', 'a/b/c'];

both('list yields every key in ascending (UTF-8 byte) order with sizes', async (t, b) => {
  const store = b.fresh(t);
  // 'a/c' and 'a/c/d' cannot both exist on a filesystem; keep what both backends can hold.
  const keys = ORDER_KEYS.filter((k) => k !== 'a/c' && k !== 'a');
  await Promise.all(keys.map((k, i) => store.put(k, 'x'.repeat(i))));
  const listed = await collect(store.list(''));
  t.deepEqual(listed.map((o) => o.key), sorted(keys));
  t.deepEqual(listed.map((o) => o.key).slice(0, 3), ['A', '_', 'a-b']);
  t.true(listed.findIndex((o) => o.key === '\u{ff5a}') < listed.findIndex((o) => o.key === '\u{1f600}'), 'UTF-8 order, not UTF-16');
  for (const o of listed) t.is(o.size, keys.indexOf(o.key));
});

both('list pages through more than 1000 objects', async (t, b) => {
  const store = b.fresh(t);
  const keys = Array.from({ length: 1234 }, (_, i) => `many/${(i * 7919) % 1234}`);
  keys.push('many-after', 'man', 'other/x');
  await pool(keys, 32, (k) => store.put(k, k));
  const listed = await collect(store.list('many/'));
  t.is(listed.length, 1234);
  t.deepEqual(listed.map((o) => o.key), sorted(keys.filter((k) => k.startsWith('many/'))));
  t.is((await collect(store.list(''))).length, keys.length);
});

both('prefix listing matches whole and partial segments', async (t, b) => {
  const store = b.fresh(t);
  const keys = ['runs/r1/ckpt-1', 'runs/r1/ckpt-2', 'runs/r10/ckpt-1', 'runs/r2/x', 'runs.txt', 'data/shard-0', 'runs/r1-old'];
  await Promise.all(keys.map((k) => store.put(k, k)));
  const ls = async (p: string) => (await collect(store.list(p))).map((o) => o.key);
  for (const p of ['', 'runs/', 'runs/r1/', 'runs/r1', 'runs/r', 'runs', 'r', 'data/shard-', 'nothing/', 'nothing', 'runs/r1/ckpt-2']) {
    t.deepEqual(await ls(p), sorted(keys.filter((k) => k.startsWith(p))), `prefix '${p}'`);
  }
});

const BAD_KEYS = ['', '..', '../x', 'a/../../x', 'a/./b', '.', '/abs', '/etc/passwd', 'a//b', 'a/', 'a\\b', '..\\x', 'a\0b', 'x'.repeat(1025)];

both('invalid keys are refused before any I/O', async (t, b) => {
  const store = b.fresh(t);
  for (const key of BAD_KEYS) {
    const name = JSON.stringify(key.slice(0, 20));
    await t.throwsAsync(store.put(key, 'x'), { instanceOf: InvalidKeyError }, `put ${name}`);
    await t.throwsAsync(store.putStream(key, Readable.from([Buffer.from('x')])), { instanceOf: InvalidKeyError }, `putStream ${name}`);
    await t.throwsAsync(store.get(key), { instanceOf: InvalidKeyError }, `get ${name}`);
    await t.throwsAsync(store.getStream(key), { instanceOf: InvalidKeyError }, `getStream ${name}`);
    await t.throwsAsync(store.head(key), { instanceOf: InvalidKeyError }, `head ${name}`);
    await t.throwsAsync(store.delete(key), { instanceOf: InvalidKeyError }, `delete ${name}`);
  }
  for (const prefix of ['/', '/a', '../', 'a/../', 'a//', 'a\\']) {
    await t.throwsAsync(collect(store.list(prefix)), { instanceOf: InvalidKeyError }, `list '${prefix}'`);
  }
  t.deepEqual(await collect(store.list('')), []);
  // 1024 bytes is still fine (2-byte characters count twice; segments stay within NAME_MAX).
  const longest = [...Array<string>(5).fill('é'.repeat(100)), 'x'.repeat(19)].join('/');
  t.is(Buffer.byteLength(longest), 1024);
  await t.throwsAsync(store.put(longest + 'x', 'no'), { instanceOf: InvalidKeyError });
  // On S3 the limit covers the whole key, store prefix included: refused here, not by the server.
  const top = store instanceof S3Store ? openStore(`s3://${BUCKET}`, { endpoint: minio?.endpoint }) : store;
  if (store instanceof S3Store) await t.throwsAsync(store.put(longest, 'no'), { instanceOf: InvalidKeyError, message: /store prefix/ });
  await top.put(longest, 'ok');
  t.is((await top.get(longest)).toString(), 'ok');
  await top.delete(longest);
});

// ---------------------------------------------------------------- keys and URIs

test('joinKey joins, trims slashes and validates', (t) => {
  t.is(joinKey('runs/', 'r1', 'ckpt.safetensors'), 'runs/r1/ckpt.safetensors');
  t.is(joinKey('a', '', '/b/', 'c'), 'a/b/c');
  t.is(joinKey('a/b', 'c/d'), 'a/b/c/d');
  t.throws(() => joinKey('runs', '..', 'x'), { instanceOf: InvalidKeyError });
  t.throws(() => joinKey('', ''), { instanceOf: InvalidKeyError });
  t.throws(() => joinKey('a//b'), { instanceOf: InvalidKeyError });
});

test('openStore picks the backend by scheme and refuses other URIs clearly', (t) => {
  const dir = tmp();
  const a = openStore(dir);
  t.true(a instanceof LocalStore);
  t.is(a.uri, `file://${dir}`);
  t.is(openStore(`file://${dir}`).uri, a.uri);
  t.is(openStore(`${dir}/`).uri, a.uri);
  t.is((openStore('relative/dir') as LocalStore).root, path.resolve('relative/dir'));
  const b = openStore('s3://my-bucket/some/prefix/', { endpoint: 'http://127.0.0.1:1', region: 'eu-west-1' });
  t.true(b instanceof S3Store);
  t.is(b.uri, 's3://my-bucket/some/prefix');
  t.is(openStore('s3://my-bucket').uri, 's3://my-bucket');
  for (const bad of ['s3://', 's3:///x', 's3://b', 's3://bad_bucket!/x', 's3://bucket/a/../b', 's3:bucket', 'http://example.com/x',
    'https://bucket.s3.amazonaws.com', 'gs://bucket', 'file://otherhost/dir', 'file:relative', '']) {
    const err = t.throws(() => openStore(bad), { instanceOf: InvalidStoreUriError }, bad);
    t.true(err?.message.includes(JSON.stringify(bad)), `names the URI: ${err?.message}`);
    t.regex(err?.message ?? '', /s3:\/\/bucket.*file:\/\/\/.*path/);
  }
  const err = t.throws(() => openStore('s3://AKIDEXAMPLE:wJalrXUtnFEMI@bucket/x'), { instanceOf: InvalidStoreUriError });
  t.false(err?.message.includes('wJalrXUtnFEMI'));
});

// ---------------------------------------------------------------- local only

test('local: a reader during a slow putStream sees the old content or none, never a part', async (t) => {
  const store = new LocalStore(tmp());
  const oldBody = bytes(MiB, 1);
  const newBody = bytes(2 * MiB, 2);
  await store.put('model.bin', oldBody);
  let done = false;
  const writing = store.putStream('model.bin', chunked(newBody, 64 * 1024, { delayMs: 10 })).finally(() => { done = true; });
  const fresh = store.putStream('fresh.bin', chunked(newBody, 64 * 1024, { delayMs: 10 }));
  let reads = 0, sawOld = 0;
  while (!done) {
    const [seen, info, listed, freshRead] = await Promise.all([store.get('model.bin'), store.head('fresh.bin'),
      collect(store.list('')), store.get('fresh.bin').catch((e: unknown) => e)]);
    t.true(seen.equals(oldBody) || seen.equals(newBody), 'whole old or whole new content');
    if (seen.equals(oldBody)) sawOld++;
    t.true(info === undefined || info.size === newBody.length);
    t.true(freshRead instanceof ObjectNotFoundError || (Buffer.isBuffer(freshRead) && freshRead.equals(newBody)), 'none, or the whole new object');
    t.false(listed.some((o) => o.key.includes(TMP_MARKER)), 'temporary files are not listed');
    reads++;
  }
  await Promise.all([writing, fresh]);
  t.true(sawOld > 2, `reader saw the old object ${sawOld} of ${reads} times during the write`);
  t.true((await store.get('model.bin')).equals(newBody));
  t.true((await store.get('fresh.bin')).equals(newBody));
  t.deepEqual(fs.readdirSync(store.root).sort(), ['fresh.bin', 'model.bin'], 'no temporary files left');
});

test('local: unfinished temporary files are skipped, and their names are not keys', async (t) => {
  const store = new LocalStore(tmp());
  await store.put('d/real', 'x');
  fs.writeFileSync(path.join(store.root, `${TMP_MARKER}123-abc`), 'partial');
  fs.writeFileSync(path.join(store.root, 'd', `${TMP_MARKER}456-def`), 'partial');
  t.deepEqual((await collect(store.list(''))).map((o) => o.key), ['d/real']);
  await t.throwsAsync(store.put(`d/${TMP_MARKER}x`, 'x'), { instanceOf: InvalidKeyError });
  await t.throwsAsync(store.get(`${TMP_MARKER}123-abc`), { instanceOf: InvalidKeyError });
});

test('local: nothing escapes the root, not even through a symbolic link', async (t) => {
  const outside = tmp('alexnet-outside-');
  fs.writeFileSync(path.join(outside, 'secret'), 'outside');
  const store = new LocalStore(tmp());
  await store.put('ok', 'inside');
  fs.symlinkSync(outside, path.join(store.root, 'link'));
  fs.symlinkSync(path.join(outside, 'secret'), path.join(store.root, 'filelink'));
  await t.throwsAsync(store.get('link/secret'), { instanceOf: InvalidKeyError, message: /outside/ });
  await t.throwsAsync(store.get('filelink'), { instanceOf: InvalidKeyError });
  await t.throwsAsync(store.head('link/secret'), { instanceOf: InvalidKeyError });
  await t.throwsAsync(store.put('link/new', 'x'), { instanceOf: InvalidKeyError });
  await t.throwsAsync(store.delete('link/secret'), { instanceOf: InvalidKeyError });
  await t.throwsAsync(collect(store.list('link/')), { instanceOf: InvalidKeyError });
  await t.throwsAsync(store.get('../' + path.basename(outside) + '/secret'), { instanceOf: InvalidKeyError });
  t.deepEqual((await collect(store.list(''))).map((o) => o.key), ['ok'], 'links are not listed');
  t.deepEqual(fs.readdirSync(outside), ['secret']);
  t.is(fs.readFileSync(path.join(outside, 'secret'), 'utf8'), 'outside');
});

test('local: a missing root reads as empty and is created on the first write', async (t) => {
  const root = path.join(tmp(), 'not', 'yet');
  const store = openStore(`file://${root}`);
  t.deepEqual(await collect(store.list('')), []);
  t.is(await store.head('x'), undefined);
  await t.throwsAsync(store.get('x'), { instanceOf: ObjectNotFoundError });
  await store.put('x/y', 'z');
  t.is(fs.readFileSync(path.join(root, 'x', 'y'), 'utf8'), 'z');
});

// ---------------------------------------------------------------- S3 only

s3Only('uploads carry full-object CRC32 checksums; large bodies go up as multipart', async (t) => {
  const store = s3.fresh(t) as S3Store;
  await store.put('small', 'checksummed');
  const body = bytes(17 * MiB, 9);
  await store.putStream('big', chunked(body, MiB));
  const head = (key: string) => store.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: `${store.prefix}/${key}`, ChecksumMode: 'ENABLED' }));
  const small = await head('small');
  t.truthy(small.ChecksumCRC32, 'PutObject stored a CRC32');
  const big = await head('big');
  t.regex(big.ETag ?? '', /-\d+"?$/, 'multipart ETag');
  t.regex(big.ChecksumCRC32 ?? '', /^[A-Za-z0-9+/]{6}==$/, 'a whole-object CRC32, not a composite "...-N"');
  t.is(big.ChecksumType, 'FULL_OBJECT');
  t.true((await store.get('big')).equals(body));
});

s3Only('downloads are checked against the stored CRC32', async (t) => {
  const store = s3.fresh(t) as S3Store;
  const body = bytes(17 * MiB, 10);
  await store.put('small', 'checksummed');
  await store.putStream('big', chunked(body, MiB));
  // Simulate damage in transit: the checksum the server sends no longer matches the body.
  store.client.middlewareStack.add((next) => async (args) => {
    const out = await next(args);
    const headers = (out.response as { headers?: Record<string, string> }).headers;
    if (headers?.['x-amz-checksum-crc32']) headers['x-amz-checksum-crc32'] = 'AAAAAA==';
    return out;
  }, { step: 'deserialize', name: 'corruptChecksumForTest', priority: 'low' });
  await t.throwsAsync(store.get('small'), { message: /Checksum mismatch/ });
  await t.throwsAsync(store.get('big'), { message: /Checksum mismatch/ });
});

s3Only('a failed multipart upload is aborted: no parts left behind', async (t) => {
  const store = s3.fresh(t) as S3Store;
  const pending = async (key: string) => (await store.client.send(new ListMultipartUploadsCommand({
    Bucket: BUCKET, Prefix: `${store.prefix}/${key}`,
  }))).Uploads ?? [];
  // The listing does show an upload left open (so an empty one below means something).
  const open = await store.client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: `${store.prefix}/open` }));
  t.is((await pending('open')).length, 1);
  await store.client.send(new AbortMultipartUploadCommand({ Bucket: BUCKET, Key: `${store.prefix}/open`, UploadId: open.UploadId }));
  // The source fails after 20 MiB: two 8 MiB parts are up by then.
  const body = bytes(24 * MiB, 4);
  await t.throwsAsync(store.putStream('broken', chunked(body, MiB, { failAfter: 20 })), { message: /source failed on purpose/ });
  t.deepEqual(await pending('broken'), []);
  t.is(await store.head('broken'), undefined);
});

s3Only('list with a small page size pages through continuation tokens', async (t) => {
  const store = s3.fresh(t, { listPageSize: 7 });
  const keys = Array.from({ length: 53 }, (_, i) => `p/${i}`);
  await pool(keys, 16, (k) => store.put(k, 'v'));
  t.deepEqual((await collect(store.list('p/'))).map((o) => o.key), sorted(keys));
});

s3Only('a missing bucket gets a message naming it', async (t, m) => {
  const store = openStore('s3://no-such-bucket-here/x', { endpoint: m.endpoint });
  for (const op of [() => store.get('k'), () => store.put('k', 'v'), () => collect(store.list(''))]) {
    const err = await t.throwsAsync(op);
    t.regex(err?.message ?? '', /bucket 'no-such-bucket-here' does not exist/);
  }
});

// Credentials come from the process environment, so each case runs in a child process.
function inChild(env: Record<string, string | undefined>, code: string): { out: string } {
  const script = `const s = require(${JSON.stringify(path.join(ROOT, 'dist', 'activities', 'store', 'index.js'))});
    const util = require('util');
    (async () => { ${code} })().then(() => console.log('NO ERROR'), (e) => {
      console.log(e.message); console.log(String(e.stack)); console.log(util.inspect(e, { depth: 8 }));
    });`;
  const childEnv: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...process.env, ...env })) if (v !== undefined) childEnv[k] = v;
  const r = spawnSync(process.execPath, ['-e', script], { env: childEnv, encoding: 'utf8', timeout: 60_000 });
  return { out: r.stdout + r.stderr };
}

s3Only('uri and error messages never contain the secret key', async (t, m) => {
  const secret = m.secretAccessKey;
  const store = s3.fresh(t);
  t.false(store.uri.includes(secret));
  const errs = await Promise.all([
    store.get('missing').catch((e: Error) => e),
    openStore('s3://no-such-bucket-here', { endpoint: m.endpoint }).put('k', 'v').catch((e: Error) => e),
  ]);
  for (const e of errs) {
    t.true(e instanceof Error);
    t.false(`${(e as Error).message}\n${(e as Error).stack}\n${inspect(e, { depth: 8 })}`.includes(secret));
  }
  t.false(inspect(store, { depth: 8 }).includes(secret), 'not in the store object after credentials were resolved');
  // A wrong secret: rejected by the server, message names the variables, not the values.
  const wrong = 'Wr0ngSecretValueThatMustNotLeak1234567890';
  const bad = inChild({ AWS_SECRET_ACCESS_KEY: wrong }, `await s.openStore(${JSON.stringify(store.uri)}, { endpoint: ${JSON.stringify(m.endpoint)} }).get('k');`);
  t.regex(bad.out, /rejected the credentials \(SignatureDoesNotMatch\); check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY/);
  t.false(bad.out.includes(wrong), bad.out);
  t.false(bad.out.includes(secret));
});

s3Only('missing credentials get a clear message naming the variables to set', async (t, m) => {
  const none = inChild({
    AWS_ACCESS_KEY_ID: undefined, AWS_SECRET_ACCESS_KEY: undefined, AWS_PROFILE: undefined, AWS_SESSION_TOKEN: undefined,
    AWS_CONFIG_FILE: '/nonexistent/config', AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/credentials',
    AWS_EC2_METADATA_DISABLED: 'true', AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: undefined, AWS_CONTAINER_CREDENTIALS_FULL_URI: undefined,
    AWS_WEB_IDENTITY_TOKEN_FILE: undefined,
  }, `await s.openStore('s3://${BUCKET}/x', { endpoint: ${JSON.stringify(m.endpoint)} }).get('k');`);
  t.regex(none.out, /no AWS credentials found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY/, none.out);
  t.regex(none.out, new RegExp(`s3://${BUCKET}/x`));
});

// MinIO's STS AssumeRole with a session policy gives credentials that may only list the
// bucket; signed by hand (SigV4) since no STS client is a dependency.
async function restrictedCredentials(m: MinioService, policy: object): Promise<Record<string, string>> {
  const sha = (x: string) => createHash('sha256').update(x).digest('hex');
  const hmac = (k: string | Buffer, x: string) => createHmac('sha256', k).update(x).digest();
  const body = new URLSearchParams({ Action: 'AssumeRole', Version: '2011-06-15', DurationSeconds: '900', Policy: JSON.stringify(policy) }).toString();
  const amzDate = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+/, '');
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', host: new URL(m.endpoint).host, 'x-amz-date': amzDate };
  const names = Object.keys(headers).sort();
  const canonical = ['POST', '/', '', ...names.map((h) => `${h}:${headers[h]}`), '', names.join(';'), sha(body)].join('\n');
  const scope = `${amzDate.slice(0, 8)}/${m.region}/sts/aws4_request`;
  const key = [m.region, 'sts', 'aws4_request'].reduce((k, x) => hmac(k, x), hmac(`AWS4${m.secretAccessKey}`, amzDate.slice(0, 8)));
  const signature = createHmac('sha256', key).update(['AWS4-HMAC-SHA256', amzDate, scope, sha(canonical)].join('\n')).digest('hex');
  const res = await fetch(m.endpoint, { method: 'POST', body, headers: {
    ...headers, authorization: `AWS4-HMAC-SHA256 Credential=${m.accessKeyId}/${scope}, SignedHeaders=${names.join(';')}, Signature=${signature}`,
  } });
  const xml = await res.text();
  const field = (name: string) => new RegExp(`<${name}>([^<]+)</${name}>`).exec(xml)?.[1] ?? '';
  if (!res.ok || !field('SessionToken')) throw new Error(`AssumeRole failed: HTTP ${res.status}`);
  return { AWS_ACCESS_KEY_ID: field('AccessKeyId'), AWS_SECRET_ACCESS_KEY: field('SecretAccessKey'), AWS_SESSION_TOKEN: field('SessionToken') };
}

s3Only('access denied gets a message naming the bucket', async (t, m) => {
  const store = s3.fresh(t);
  await store.put('k', 'v');
  const creds = await restrictedCredentials(m, { Version: '2012-10-17', Statement: [
    { Effect: 'Allow', Action: ['s3:ListBucket'], Resource: [`arn:aws:s3:::${BUCKET}`] }] });
  const r = inChild(creds, `const st = s.openStore(${JSON.stringify(store.uri)}, { endpoint: ${JSON.stringify(m.endpoint)} });
    console.log('listed', (await (async () => { const a = []; for await (const o of st.list('')) a.push(o.key); return a; })()).join(','));
    for (const op of [() => st.get('k'), () => st.head('k'), () => st.put('k', 'w')]) {
      try { await op(); console.log('allowed'); } catch (e) { console.log('denied:', e.message); }
    }`);
  t.regex(r.out, /listed k\n/, 'session credentials (AWS_SESSION_TOKEN) from the environment work');
  t.is(r.out.match(/denied: get 'k' .*access denied to bucket 'alexnet-store-test'/g)?.length, 1, r.out);
  t.regex(r.out, /denied: head 'k' .*access denied to bucket 'alexnet-store-test'/);
  t.regex(r.out, /denied: put 'k' .*access denied to bucket 'alexnet-store-test'/);
  t.false(r.out.includes(creds.AWS_SECRET_ACCESS_KEY) || r.out.includes(m.secretAccessKey));
  t.is((await store.get('k')).toString(), 'v');
});

// A proxy in front of MinIO that answers the first `failures` requests with 503 SlowDown,
// as S3 does under load. The Host header passes through unchanged, so signatures hold.
async function flakyProxy(target: string, failures: number): Promise<{ endpoint: string; requests: () => number; close: () => Promise<void> }> {
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

s3Only('transient 503s are retried; maxAttempts bounds the retries', async (t, m) => {
  const proxy = await flakyProxy(m.endpoint, 2);
  try {
    const prefix = s3.fresh(t).uri.slice(`s3://${BUCKET}/`.length);
    const store = openStore(`s3://${BUCKET}/${prefix}`, { endpoint: proxy.endpoint });
    await store.put('k', 'survived');
    t.is(proxy.requests(), 3, 'two 503s, then success');
    t.is((await store.get('k')).toString(), 'survived');
    const proxy2 = await flakyProxy(m.endpoint, 5);
    try {
      const impatient = openStore(`s3://${BUCKET}/${prefix}`, { endpoint: proxy2.endpoint, maxAttempts: 2 });
      await t.throwsAsync(impatient.put('k2', 'x'), { message: /SlowDown/ });
      t.is(proxy2.requests(), 2);
    } finally {
      await proxy2.close();
    }
  } finally {
    await proxy.close();
  }
});

s3Only('endpoint, path style and region come from the environment too', async (t, m) => {
  const uri = s3.fresh(t).uri;
  const code = `const st = s.openStore(${JSON.stringify(uri)}); await st.put('env', 'ok'); console.log('read', (await st.get('env')).toString());`;
  for (const env of [{ AWS_ENDPOINT_URL_S3: m.endpoint, ALEXNET_S3_FORCE_PATH_STYLE: '1', AWS_REGION: m.region },
    { AWS_ENDPOINT_URL: m.endpoint, AWS_REGION: undefined, AWS_DEFAULT_REGION: undefined }]) {
    t.regex(inChild(env, code).out, /read ok\nNO ERROR/, JSON.stringify(Object.keys(env)));
  }
});
