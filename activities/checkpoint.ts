// Training checkpoints in the store: the network state (weights, momentum, RNG) as
// safetensors with the cursor (epoch, batch), LR and attempt in its metadata, under a key
// scoped by epoch, batch and attempt (so two attempts never write the same object), and
// `latest.json`, written last, as the one pointer to trust. A checkpoint that does not
// verify is passed over for the previous valid one.
import { Network } from '../native/index';
import { SafetensorsError } from '../native/safetensors';
import { encodeStateParts, readStateNetwork, StateError } from '../native/state';
import type { GemmPrecision } from '../common/contract';
import { getJson, ObjectNotFoundError, type ObjectStore } from './store';
import { parseCheckpointKey, runKeys } from '../common/store-layout';

export interface Cursor {
  epoch: number;  // 0-based epoch the state is in
  batch: number;  // batches of that epoch already trained
}

export interface LatestPointer extends Cursor {
  key: string;
  attempt: number;
  lr: number;
  writtenAt: string;
}

// A newer attempt already moved latest.json: this (zombie) attempt must stop.
export class SupersededError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SupersededError';
  }
}

export async function readLatest(store: ObjectStore, runId: string): Promise<LatestPointer | undefined> {
  const key = runKeys(runId).latest;
  if (!(await store.head(key))) return undefined;
  return getJson<LatestPointer>(store, key);
}

const before = (a: Cursor, b: Cursor) => a.epoch < b.epoch || (a.epoch === b.epoch && a.batch < b.batch);

// Writes the state, then moves latest.json to it, unless a later attempt has written
// latest.json since (a zombie attempt never overwrites a newer attempt's pointer). The
// state goes to the store straight from the network's memory (no copy of the file is
// made), so the network must not train until this settles.
export async function saveCheckpoint(store: ObjectStore, runId: string, net: Network, cursor: Cursor, meta: { attempt: number; lr: number }): Promise<LatestPointer> {
  const keys = runKeys(runId);
  const key = keys.checkpoint(cursor.epoch, cursor.batch, meta.attempt);
  await store.put(key, encodeStateParts(net, { runId, epoch: String(cursor.epoch), batch: String(cursor.batch), attempt: String(meta.attempt), lr: String(meta.lr) }));
  const current = await readLatest(store, runId);
  // Attempts count per activity (per epoch): across epochs only the cursor decides.
  const newer = current && (current.epoch > cursor.epoch || (current.epoch === cursor.epoch && (current.attempt > meta.attempt || current.batch > cursor.batch)));
  if (current && newer) {
    throw new SupersededError(`run ${runId}: latest.json points at attempt ${current.attempt} ${current.epoch}/${current.batch}; attempt ${meta.attempt} at ${cursor.epoch}/${cursor.batch} stops`);
  }
  const pointer: LatestPointer = { key, ...cursor, attempt: meta.attempt, lr: meta.lr, writtenAt: new Date().toISOString() };
  await store.put(keys.latest, JSON.stringify(pointer));
  return pointer;
}

export interface LoadedCheckpoint {
  net: Network;
  pointer: Pick<LatestPointer, 'key' | 'epoch' | 'batch' | 'attempt' | 'lr'>;
  warnings: string[];  // checkpoints passed over, and why
}

// The cursor and attempt a checkpoint key encodes (runKeys().checkpoint), if it is one.
export function cursorOfKey(key: string): { epoch: number; batch: number; attempt: number } | undefined {
  const c = parseCheckpointKey(key);
  return c && { epoch: c.epoch, batch: c.batch, attempt: c.attempt };
}

// Newest first by (epoch, batch, attempt) as numbers: attempts are unlimited, and past 999
// their zero-padded keys no longer sort as strings do.
const newestFirst = (a: string, b: string) => {
  const [x, y] = [cursorOfKey(a)!, cursorOfKey(b)!];
  return y.epoch - x.epoch || y.batch - x.batch || y.attempt - x.attempt;
};

// A network from the newest valid checkpoint at or before latest.json (config, weights,
// momentum, RNG). A corrupt one (bad checksum, truncated, wrong shapes) is passed over
// with a warning, as is a missing one. undefined when the run has no checkpoint yet. Each candidate streams
// from the store into the network's memory (readStateNetwork), its sha256 over the
// tensor bytes checked on the way: that end-to-end check is why the read skips the
// store's own transfer checksum (S3's CRC32), which it would only repeat.
export async function loadNewestCheckpoint(store: ObjectStore, runId: string, options: { threads?: number; precision?: GemmPrecision } = {}): Promise<LoadedCheckpoint | undefined> {
  const latest = await readLatest(store, runId);
  if (!latest) return undefined;
  const candidates: string[] = [];
  for await (const o of store.list(runKeys(runId).checkpoints)) {
    const c = cursorOfKey(o.key);
    if (c && !before(latest, c)) candidates.push(o.key);
  }
  candidates.sort(newestFirst);
  if (!candidates.includes(latest.key)) candidates.unshift(latest.key);
  const warnings: string[] = [];
  for (const key of candidates) {
    try {
      const body = await store.getStream(key, { verify: false });
      const { net, metadata } = await readStateNetwork(body, key, { threads: options.threads, ...(options.precision ? { precision: options.precision } : {}) });
      const c = cursorOfKey(key)!;
      return { net, pointer: { key, ...c, lr: Number(metadata.lr ?? latest.lr) }, warnings };
    } catch (e) {
      // Missing: latest.json named a checkpoint that a raced retention pass deleted, or that
      // was never whole on a store without atomic puts; the previous valid one serves.
      if (!(e instanceof StateError) && !(e instanceof SafetensorsError) && !(e instanceof ObjectNotFoundError)) throw e;
      warnings.push(`checkpoint ${key} passed over: ${(e as Error).message}`);
    }
  }
  throw new StateError(`run ${runId}: no valid checkpoint (${warnings.join('; ')})`);
}
