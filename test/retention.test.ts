// Checkpoint retention's choice (activities/retention.ts), as a pure function: what the
// policy keeps, what is always kept (latest.json's checkpoint and anything at or after it,
// pinned ones), and that nothing is kept twice or lost. The end-to-end run is in
// train.test.ts.
import test from 'ava';

import { checkpointsToKeep } from '../activities/retention';
import { DEFAULT_RETENTION } from '../common/contract';

const key = (epoch: number, batch: number, attempt = 1) =>
  `runs/r/checkpoints/${String(epoch).padStart(5, '0')}-${String(batch).padStart(7, '0')}-${String(attempt).padStart(3, '0')}.safetensors`;
const listed = (epoch: number, batch: number, attempt = 1) => ({ key: key(epoch, batch, attempt), epoch, batch, attempt });

// Three epochs of 10 batches, a checkpoint every 2, latest in epoch 3 at batch 4.
const all = [listed(0, 0)];
for (let e = 0; e < 3; e++) for (let b = 2; b <= 10; b += 2) all.push(listed(e, b));
all.push(listed(3, 2), listed(3, 4));

test('retention: the initial checkpoint, latest, the newest keepLast mid-epoch ones before it and every epoch\'s last checkpoint by default', (t) => {
  const keep = checkpointsToKeep(all, key(3, 4), DEFAULT_RETENTION, new Set());
  // Mid-epoch: epoch 2's end (2, 10) is not one, so the two before latest are (3, 2) and (2, 8).
  t.deepEqual([...keep].sort(), [key(0, 0), key(0, 10), key(1, 10), key(2, 8), key(2, 10), key(3, 2), key(3, 4)].sort());
});

test('retention: every M-th epoch, keepLast 1, pinned checkpoints, and anything after latest (a running attempt\'s)', (t) => {
  const ahead = listed(3, 6, 2);  // written by a newer attempt after latest.json was read
  const keep = checkpointsToKeep([...all, ahead], key(3, 4), { keepLast: 1, keepEpochEvery: 2, keepAll: false }, new Set([key(0, 4)]));
  t.deepEqual([...keep].sort(), [key(0, 0), key(0, 4), key(1, 10), key(3, 2), key(3, 4), key(3, 6, 2)].sort());
});

test('retention: keepEpochEvery 0 keeps no epoch ends; latest.json naming an unknown key keeps everything', (t) => {
  t.deepEqual([...checkpointsToKeep(all, key(3, 4), { keepLast: 2, keepEpochEvery: 0, keepAll: false }, new Set())].sort(), [key(0, 0), key(2, 8), key(3, 2), key(3, 4)].sort());
  const kept = checkpointsToKeep(all, 'runs/r/checkpoints/garbage', DEFAULT_RETENTION, new Set());
  t.true(all.every((c) => kept.has(c.key)), 'nothing deleted when latest.json cannot be placed');
});
