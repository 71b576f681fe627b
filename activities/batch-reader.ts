// Streams batch files from a store for training and evaluation: keeps up to `prefetch`
// files downloading and decoding ahead of the consumer, so training only waits on I/O
// when the store is slower than training. Every file is verified (header, sizes,
// checksum, and with `expect` what the dataset's manifest says it holds). A file that
// fails verification is a non-retryable failure naming its key and the check: another
// attempt would read the same bytes. A read that fails (the store, the network) stays
// an ordinary error, which Temporal retries.
import { ApplicationFailure } from '@temporalio/common';

import { Batch, BatchExpectation, BatchFormatError, checkBatch, decodeBatch } from './batch-format';
import type { ObjectStore } from './store';

export interface BatchReaderOptions {
  prefetch?: number;  // files in flight ahead of the consumer (default 2)
  // What keys[i] must hold: its manifest's image count, S and classes.
  expect?: (index: number) => BatchExpectation;
}

export async function* readBatches(store: ObjectStore, keys: readonly string[], options: BatchReaderOptions = {}): AsyncGenerator<Batch & { key: string }> {
  const prefetch = Math.max(1, options.prefetch ?? 2);
  const load = async (key: string, index: number) => {
    const bytes = await store.get(key);
    const source = `${key} in ${store.uri}`;
    try {
      const batch = decodeBatch(bytes, source);
      if (options.expect) checkBatch(batch, options.expect(index), source);
      return { key, ...batch };
    } catch (e) {
      if (!(e instanceof BatchFormatError)) throw e;
      throw ApplicationFailure.nonRetryable(`${e.message}: re-run PrepareDataset for this dataset (it rewrites the batch files that do not verify)`, 'CorruptBatch');
    }
  };
  const pending: Promise<Batch & { key: string }>[] = [];
  let next = 0;
  const fill = () => {
    while (pending.length < prefetch && next < keys.length) {
      const p = load(keys[next], next);
      next++;
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
