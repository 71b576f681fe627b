// The training batch reader: order, prefetch depth, and corrupt files named by key.
import test from 'ava';

import { encodeBatch } from '../activities/batch-format';
import { readBatches } from '../activities/batch-reader';
import { openStore, ObjectStore } from '../activities/store';
import { tmpDir } from './helpers';

async function storeWithBatches(n: number): Promise<{ store: ObjectStore; keys: string[] }> {
  const store = openStore(tmpDir('alexnet-batches-'));
  const keys: string[] = [];
  for (let i = 0; i < n; i++) {
    const key = `batches/train/${i}.bin`;
    await store.put(key, encodeBatch({ count: 2, height: 2, width: 2, channels: 3, pixels: new Uint8Array(24).fill(i), labels: Int32Array.of(i, i + 1) }));
    keys.push(key);
  }
  return { store, keys };
}

test('batch reader: yields every batch in order while prefetching ahead', async (t) => {
  const { store, keys } = await storeWithBatches(6);
  let inFlight = 0;
  let maxInFlight = 0;
  const counting: ObjectStore = Object.assign(Object.create(store) as ObjectStore, {
    get: async (key: string) => {
      maxInFlight = Math.max(maxInFlight, ++inFlight);
      try {
        await new Promise((r) => setTimeout(r, 20));
        return await store.get(key);
      } finally {
        inFlight--;
      }
    },
  });
  const seen: number[] = [];
  for await (const b of readBatches(counting, keys, { prefetch: 3 })) {
    seen.push(b.labels[0]);
    await new Promise((r) => setTimeout(r, 40));  // a consumer slower than the store
  }
  t.deepEqual(seen, [0, 1, 2, 3, 4, 5]);
  t.is(maxInFlight, 3, 'three downloads ran at once ahead of the consumer');
});

test('batch reader: a corrupt batch file is an error naming its key', async (t) => {
  const { store, keys } = await storeWithBatches(3);
  const bytes = await store.get(keys[1]);
  bytes[bytes.length - 1] ^= 0xff;
  await store.put(keys[1], bytes);
  const seen: number[] = [];
  const err = await t.throwsAsync(async () => {
    for await (const b of readBatches(store, keys)) seen.push(b.labels[0]);
  });
  t.regex(err!.message, /batches\/train\/1\.bin in .* is invalid: checksum mismatch/);
  t.deepEqual(seen, [0]);
});
