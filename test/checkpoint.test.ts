// Checkpoints: the newest valid one wins, a corrupt or truncated one is passed over with
// a warning, and a zombie attempt can never move latest.json back; on S3 (a real MinIO)
// too, with what the fast path there relies on: a streamed upload with its CRC32, a
// download of the expected length, retries of a streamed upload.
import test, { type ExecutionContext } from 'ava';
import { Readable } from 'stream';
import { HeadObjectCommand } from '@aws-sdk/client-s3';

import { loadNewestCheckpoint, readLatest, saveCheckpoint, SupersededError } from '../activities/checkpoint';
import { openStore, type OpenStoreOptions, type S3Store } from '../activities/store';
import { Network } from '../native/index';
import { encodeState } from '../native/state';
import { BUCKET, flakyProxy, s3, s3Test } from './store-helpers';
import { makeBatch, tmpDir } from './helpers';

// Node 20 is what we run; the SDK's notice about its future Node 22 minimum is noise here.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

test('checkpoint: a corrupt newest checkpoint is passed over for the previous valid one', async (t) => {
  const store = openStore(tmpDir());
  const net = new Network('tiny', { seed: 1 });
  await saveCheckpoint(store, 'r', net, { epoch: 0, batch: 0 }, { attempt: 1, lr: 0.01 });
  net.weight('fc8.bias')[0] = 42;
  const newest = await saveCheckpoint(store, 'r', net, { epoch: 0, batch: 5 }, { attempt: 1, lr: 0.01 });
  const good = await loadNewestCheckpoint(store, 'r');
  t.is(good!.pointer.batch, 5);
  t.is(good!.net.weight('fc8.bias')[0], 42);
  const bytes = await store.get(newest.key);
  bytes[bytes.length - 1] ^= 0xff;
  await store.put(newest.key, bytes);
  const loaded = await loadNewestCheckpoint(store, 'r');
  t.is(loaded!.pointer.batch, 0);
  t.not(loaded!.net.weight('fc8.bias')[0], 42);
  t.is(loaded!.warnings.length, 1);
  t.regex(loaded!.warnings[0], /00000-0000005-001\.safetensors passed over: .*corrupt/);
});

test('checkpoint: a truncated newest checkpoint is passed over for the previous valid one', async (t) => {
  const store = openStore(tmpDir());
  const net = new Network('tiny', { seed: 1 });
  await saveCheckpoint(store, 'r', net, { epoch: 0, batch: 0 }, { attempt: 1, lr: 0.01 });
  const newest = await saveCheckpoint(store, 'r', net, { epoch: 0, batch: 5 }, { attempt: 1, lr: 0.01 });
  const bytes = await store.get(newest.key);
  await store.put(newest.key, bytes.subarray(0, bytes.length - 100));
  const loaded = await loadNewestCheckpoint(store, 'r');
  t.is(loaded!.pointer.batch, 0);
  t.is(loaded!.warnings.length, 1);
  t.regex(loaded!.warnings[0], /00000-0000005-001\.safetensors passed over: .*not a valid safetensors file: tensor .* does not fit .*truncated/);
});

test('checkpoint: a zombie attempt cannot overwrite a newer attempt\'s latest.json', async (t) => {
  const store = openStore(tmpDir());
  const net = new Network('tiny', { seed: 1 });
  await saveCheckpoint(store, 'r', net, { epoch: 0, batch: 3 }, { attempt: 1, lr: 0.01 });
  await saveCheckpoint(store, 'r', net, { epoch: 0, batch: 6 }, { attempt: 2, lr: 0.01 });
  await t.throwsAsync(saveCheckpoint(store, 'r', net, { epoch: 0, batch: 9 }, { attempt: 1, lr: 0.01 }), { instanceOf: SupersededError });
  await t.throwsAsync(saveCheckpoint(store, 'r', net, { epoch: 0, batch: 4 }, { attempt: 2, lr: 0.01 }), { instanceOf: SupersededError });
  t.like(await readLatest(store, 'r'), { epoch: 0, batch: 6, attempt: 2 });
  // The next epoch's activity starts again at attempt 1: a later epoch always wins.
  await saveCheckpoint(store, 'r', net, { epoch: 1, batch: 3 }, { attempt: 1, lr: 0.01 });
  t.like(await readLatest(store, 'r'), { epoch: 1, batch: 3, attempt: 1 });
});

// ---------------------------------------------------------------- on S3 (MinIO)

// A fresh S3 store for one test (store-helpers: MinIO with bucket BUCKET runs for this file),
// by default straight at MinIO; `endpoint` puts a proxy in front of it.
const s3Store = (t: ExecutionContext, options: OpenStoreOptions = {}): S3Store => s3.fresh(t, options) as S3Store;

s3Test('checkpoint: saved with a CRC32 the server checked, loaded back exactly; a corrupt one is passed over', async (t) => {
  const store = s3Store(t);
  const net = new Network('alexnet-32', { seed: 2 });
  const { images, labels } = makeBatch(2, net.inputSize, net.config.classes);
  await net.step(images, labels, { lr: 0.01 });
  const saved = await saveCheckpoint(store, 'r', net, { epoch: 0, batch: 1 }, { attempt: 1, lr: 0.02 });
  const head = await store.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: `${store.prefix}/${saved.key}`, ChecksumMode: 'ENABLED' }));
  t.regex(head.ChecksumCRC32 ?? '', /^[A-Za-z0-9+/]{6}==$/, 'the object has the CRC32 sent with it');
  const loaded = await loadNewestCheckpoint(store, 'r');
  t.like(loaded!.pointer, { key: saved.key, epoch: 0, batch: 1, attempt: 1, lr: 0.02 });
  t.true(encodeState(loaded!.net).equals(encodeState(net)), 'weights, momentum and RNG state exactly');
  t.deepEqual(loaded!.warnings, []);
  const newer = await saveCheckpoint(store, 'r', net, { epoch: 0, batch: 2 }, { attempt: 1, lr: 0.02 });
  const bytes = await store.get(newer.key);
  bytes[bytes.length - 1] ^= 0xff;
  await store.put(newer.key, bytes);
  const again = await loadNewestCheckpoint(store, 'r');
  t.is(again!.pointer.batch, 1);
  t.regex(again!.warnings.join(), /00000-0000002-001\.safetensors passed over: .*corrupt/);
});

s3Test('get: a transfer shorter than the object fails naming the key', async (t) => {
  const store = s3Store(t);
  await store.put('k', Buffer.alloc(100_000, 7));
  t.is((await store.get('k')).length, 100_000);
  // The connection delivers only part of the body, without the CRC32 that would catch it.
  store.client.middlewareStack.add((next) => async (args) => {
    const out = await next(args);
    const res = out.response as { headers?: Record<string, string>; body?: unknown };
    if (res.body instanceof Readable) {
      res.body.destroy();
      res.body = Readable.from([Buffer.alloc(10)]);
      delete res.headers?.['x-amz-checksum-crc32'];
    }
    return out;
  }, { step: 'deserialize', name: 'cutBodyForTest', priority: 'low' });
  await t.throwsAsync(store.get('k'), { message: new RegExp(`get 'k' in s3://${BUCKET}/.*: the object has 100000 bytes but the transfer gave 10 \\(cut short\\)`) });
});


s3Test('put of several buffers: one streamed PutObject, retried after transient errors', async (t, m) => {
  const proxy = await flakyProxy(m.endpoint, 2);
  t.teardown(proxy.close);
  const store = s3Store(t, { endpoint: proxy.endpoint });
  await store.put('k', [Buffer.from('head|'), new Uint8Array([0x61, 0x62]), Buffer.alloc(0), Buffer.from('|tail')]);
  t.is(proxy.requests(), 3, 'two 503s, then success');
  t.is((await store.get('k')).toString(), 'head|ab|tail');
  const proxy2 = await flakyProxy(m.endpoint, 5);
  t.teardown(proxy2.close);
  const impatient = s3Store(t, { endpoint: proxy2.endpoint, maxAttempts: 2 });
  await t.throwsAsync(impatient.put('k2', [Buffer.from('x')]), { message: /put 'k2' .*SlowDown/ });
  t.is(proxy2.requests(), 2);
});
