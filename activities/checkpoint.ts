// Training checkpoints in the store: the network state (weights, momentum, RNG) as
// safetensors with the cursor (epoch, batch), LR and attempt in its metadata, under a key
// scoped by epoch, batch and attempt (so two attempts never write the same object), and
// `latest.json`, written last, as the one pointer to trust. A checkpoint that does not
// verify is passed over for the previous valid one; a corrupt latest.json or run.json is
// an error naming it (never "no checkpoint yet", which would start the run afresh).
import { Network, modelConfig, presetNames, type NetConfig } from '../native/index';
import { SafetensorsError } from '../native/safetensors';
import { encodeStateParts, readStateNetwork, StateError } from '../native/state';
import type { GemmPrecision, RunRecord } from '../common/contract';
import { describe } from '../common/validate';
import { ObjectNotFoundError, readStateObject, type ObjectStore } from './store';
import { CHECKPOINT_KEY_FORM, parseCheckpointKey, runKeys } from '../common/store-layout';

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

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

// The run's latest.json, undefined only when there is none. Checked, since training
// resumes from it and inference serves what it names: an object whose key is a
// checkpoint of this run, whose epoch and batch are the key's, with a non-negative
// integer attempt, a non-negative LR and the time it was written; else a StateError
// naming the file.
export async function readLatest(store: ObjectStore, runId: string): Promise<LatestPointer | undefined> {
  const read = await readStateObject(store, runKeys(runId).latest, 'a pointer object',
    'Restore it, or write it naming the run\'s newest valid checkpoint ({"key", "epoch", "batch", "attempt", "lr", "writtenAt"})');
  if (!read) return undefined;
  const { value: raw, corrupt: bad } = read;
  const c = typeof raw.key === 'string' ? parseCheckpointKey(raw.key) : undefined;
  if (!c || c.runId !== runId) throw bad(`its key ${describe(raw.key)} is not a checkpoint of run ${runId} (${CHECKPOINT_KEY_FORM})`);
  for (const f of ['epoch', 'batch'] as const) if (raw[f] !== c[f]) throw bad(`its ${f} is ${describe(raw[f])} but its key ${raw.key as string} says ${c[f]}`);
  if (!isCount(raw.attempt)) throw bad(`its attempt is ${describe(raw.attempt)}, not a non-negative integer`);
  if (typeof raw.lr !== 'number' || !(raw.lr >= 0) || !Number.isFinite(raw.lr)) throw bad(`its lr is ${describe(raw.lr)}, not a non-negative number`);
  if (typeof raw.writtenAt !== 'string') throw bad(`its writtenAt is ${describe(raw.writtenAt)}, not a time`);
  return { key: raw.key as string, epoch: c.epoch, batch: c.batch, attempt: raw.attempt, lr: raw.lr, writtenAt: raw.writtenAt };
}

// The run's run.json, undefined for runs that predate it; checked as far as loading a
// checkpoint relies on it (a StateError naming the file otherwise).
export async function readRunRecord(store: ObjectStore, runId: string): Promise<RunRecord | undefined> {
  const read = await readStateObject(store, runKeys(runId).record, 'a run record object',
    'Restore it (it is written once, when the run starts: {"runId", "datasetName", "model", "classes", "seed", "createdAt"})');
  if (!read) return undefined;
  const { value: raw, corrupt: bad } = read;
  for (const f of ['datasetName', 'model'] as const) if (typeof raw[f] !== 'string' || raw[f] === '') throw bad(`its ${f} is ${describe(raw[f])}, not a name`);
  if (!isCount(raw.classes) || raw.classes < 1) throw bad(`its classes is ${describe(raw.classes)}, not a positive integer`);
  return raw as unknown as RunRecord;
}

// The one check of a checkpoint's config against its run's run.json (where the run is
// known: training's resume, inference, export): the record's classes and, when its model
// is a built-in one, that model's input and layers with that many classes (what training
// builds: modelConfig(model, {classes})). `config` as a Network has it (every field
// given, as modelConfig's). A checkpoint or run.json changed after it was written, even
// one that keeps its checksums consistent, is refused by name (StateError).
export function checkConfigAgainstRun(config: NetConfig, record: RunRecord, runId: string, source: string): void {
  const recordKey = runKeys(runId).record;
  const fail = (why: string) => new StateError(`${source} does not match run ${runId}'s ${recordKey}: ${why}. Use an earlier checkpoint, or restore whichever of the two was changed`);
  if (config.classes !== record.classes) throw fail(`it has ${config.classes} classes, the run ${record.classes}`);
  if (!presetNames().includes(record.model)) return;
  const model = modelConfig(record.model, { classes: record.classes });
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  if (!same(config.input, model.input)) throw fail(`its input is ${JSON.stringify(config.input)}, model ${record.model}'s ${JSON.stringify(model.input)}`);
  const n = Math.max(config.layers.length, model.layers.length);
  for (let i = 0; i < n; i++) {
    if (!same(config.layers[i], model.layers[i])) {
      throw fail(`its layer ${i} is ${JSON.stringify(config.layers[i]) ?? 'missing'}, model ${record.model}'s ${JSON.stringify(model.layers[i]) ?? 'missing'} (${config.layers.length} layers against ${model.layers.length})`);
    }
  }
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
// momentum, RNG). A corrupt one (bad checksum, truncated, wrong shapes, a config out of
// bounds or not the run's in run.json) is passed over with a warning, as is a missing one.
// undefined when the run has no checkpoint yet (no latest.json); a corrupt latest.json or
// run.json throws (StateError naming it). Each candidate streams from the store into the
// network's memory (readStateNetwork), its sha256 over the tensor bytes checked on the
// way: that end-to-end check is why the read skips the store's own transfer checksum
// (S3's CRC32), which it would only repeat.
export async function loadNewestCheckpoint(store: ObjectStore, runId: string, options: { threads?: number; precision?: GemmPrecision } = {}): Promise<LoadedCheckpoint | undefined> {
  const latest = await readLatest(store, runId);
  if (!latest) return undefined;
  const record = await readRunRecord(store, runId);
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
      const { net, metadata } = await readStateNetwork(body, key, {
        threads: options.threads, ...(options.precision ? { precision: options.precision } : {}),
        ...(record ? { verifyConfig: (config: NetConfig) => checkConfigAgainstRun(config, record, runId, key) } : {}),
      });
      const lr = metadata.lr === undefined ? latest.lr : Number(metadata.lr);
      if (!(lr >= 0 && Number.isFinite(lr))) throw new StateError(`${key}: its metadata lr ${JSON.stringify(metadata.lr)} is not a non-negative number`);
      return { net, pointer: { key, ...cursorOfKey(key)!, lr }, warnings };
    } catch (e) {
      // Missing: latest.json named a checkpoint that a raced retention pass deleted, or that
      // was never whole on a store without atomic puts; the previous valid one serves.
      if (!(e instanceof StateError) && !(e instanceof SafetensorsError) && !(e instanceof ObjectNotFoundError)) throw e;
      warnings.push(`checkpoint ${key} passed over: ${(e as Error).message}`);
    }
  }
  throw new StateError(`run ${runId}: no valid checkpoint (${warnings.join('; ')})`);
}
