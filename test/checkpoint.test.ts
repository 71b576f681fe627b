// Checkpoints: the newest valid one wins, a corrupt one is passed over with a warning,
// and a zombie attempt can never move latest.json back.
import test from 'ava';

import { loadNewestCheckpoint, readLatest, saveCheckpoint, SupersededError } from '../activities/checkpoint';
import { openStore } from '../activities/store';
import { Network } from '../native/index';
import { tmpDir } from './helpers';

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
