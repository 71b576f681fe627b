// The object store, the behaviour both backends share: every case here runs against each
// backend of the table, LocalStore on a temporary folder and S3Store on a real MinIO
// server (infra/services.ts); then keys and store URIs. The checks only one side has are
// in store-local.test.ts and store-s3.test.ts.
import test, { type ExecutionContext } from 'ava';
import * as path from 'path';
import { Readable } from 'stream';

import { InvalidKeyError, InvalidStoreUriError, joinKey, LocalStore, ObjectNotFoundError, openStore, S3Store } from '../activities/store/index';
import { tmpDir } from './helpers';
import { BUCKET, bytes, chunked, collect, local, MiB, minio, pool, readAll, s3, sorted, type Backend } from './store-helpers';

const BACKENDS: Backend[] = [local, s3];

// Registers the same case for each backend.
function both(title: string, fn: (t: ExecutionContext, b: Backend) => Promise<void>): void {
  for (const b of BACKENDS) b.test(title, (t) => fn(t, b));
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
  const top = store instanceof S3Store ? openStore(`s3://${BUCKET}`, { endpoint: minio().endpoint }) : store;
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
  const dir = tmpDir('alexnet-store-');
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
