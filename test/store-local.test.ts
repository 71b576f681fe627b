// The local object store only: atomic writes seen by a concurrent reader, unfinished
// temporary files, no escape from the root, a root that does not exist yet. The cases
// both backends share are in store.test.ts.
import test from 'ava';
import * as fs from 'fs';
import * as path from 'path';

import { InvalidKeyError, LocalStore, ObjectNotFoundError, openStore } from '../activities/store/index';
import { TMP_MARKER } from '../activities/store/local';
import { tmpDir } from './helpers';
import { bytes, chunked, collect, MiB } from './store-helpers';

test('local: a reader during a slow putStream sees the old content or none, never a part', async (t) => {
  const store = new LocalStore(tmpDir('alexnet-store-'));
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
  const store = new LocalStore(tmpDir('alexnet-store-'));
  await store.put('d/real', 'x');
  fs.writeFileSync(path.join(store.root, `${TMP_MARKER}123-abc`), 'partial');
  fs.writeFileSync(path.join(store.root, 'd', `${TMP_MARKER}456-def`), 'partial');
  t.deepEqual((await collect(store.list(''))).map((o) => o.key), ['d/real']);
  await t.throwsAsync(store.put(`d/${TMP_MARKER}x`, 'x'), { instanceOf: InvalidKeyError });
  await t.throwsAsync(store.get(`${TMP_MARKER}123-abc`), { instanceOf: InvalidKeyError });
});

test('local: nothing escapes the root, not even through a symbolic link', async (t) => {
  const outside = tmpDir('alexnet-outside-');
  fs.writeFileSync(path.join(outside, 'secret'), 'outside');
  const store = new LocalStore(tmpDir('alexnet-store-'));
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
  const root = path.join(tmpDir('alexnet-store-'), 'not', 'yet');
  const store = openStore(`file://${root}`);
  t.deepEqual(await collect(store.list('')), []);
  t.is(await store.head('x'), undefined);
  await t.throwsAsync(store.get('x'), { instanceOf: ObjectNotFoundError });
  await store.put('x/y', 'z');
  t.is(fs.readFileSync(path.join(root, 'x', 'y'), 'utf8'), 'z');
});
