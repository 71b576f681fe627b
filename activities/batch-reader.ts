// Streams batch files from a store for training: keeps up to `prefetch` files downloading
// and decoding ahead of the consumer, so training only waits on I/O when the store is
// slower than training. Every file is verified (header, sizes, checksum); a corrupt one
// is an error naming its key.
import { Batch, decodeBatch } from './batch-format';
import type { ObjectStore } from './store';

export interface BatchReaderOptions {
  prefetch?: number;  // files in flight ahead of the consumer (default 2)
}

export async function* readBatches(store: ObjectStore, keys: readonly string[], options: BatchReaderOptions = {}): AsyncGenerator<Batch & { key: string }> {
  const prefetch = Math.max(1, options.prefetch ?? 2);
  const load = async (key: string) => ({ key, ...decodeBatch(await store.get(key), `${key} in ${store.uri}`) });
  const pending: Promise<Batch & { key: string }>[] = [];
  let next = 0;
  const fill = () => {
    while (pending.length < prefetch && next < keys.length) {
      const p = load(keys[next++]);
      p.catch(() => undefined);  // handled when awaited in order; avoids an unhandled rejection meanwhile
      pending.push(p);
    }
  };
  fill();
  while (pending.length) {
    const batch = await pending.shift()!;
    fill();
    yield batch;
  }
}
