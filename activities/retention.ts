// Checkpoint retention: which of a run's checkpoints to keep, and deleting the rest.
// The paper's AlexNet checkpoint (weights and momentum) is about 490 MB; a checkpoint every
// 100 batches of ImageNet is about 100 per epoch, so without this a run writes terabytes.
//
// Kept, whatever the policy says:
//   - the run's initial checkpoint (epoch 0, batch 0: the seed's starting point, small
//     next to the rest and what a re-run or a comparison starts from);
//   - the checkpoint latest.json names, and every checkpoint at or after its cursor (a newer
//     one can only come from an attempt still running: never touched);
//   - the best epoch's last checkpoint (lowest validation top-1 error in metrics.jsonl);
//   - the promoted checkpoint (runs/<run>/serving.json), which inference serves;
//   - every checkpoint a report names (runs/<run>/reports/**/report.json) or an evaluation
//     in progress holds (runs/<run>/holds/<workflowId>.json, written when it resolves its
//     checkpoint, removed with its report).
// Kept by the policy (RetentionPolicy): the newest `keepLast` mid-epoch checkpoints before
// latest.json's, and the last checkpoint of every `keepEpochEvery`-th completed epoch.
// Deleting is idempotent and runs only on what latest.json has moved past, so two attempts
// (a zombie and its successor) pruning at once delete the same things and nothing needed.
import type { RetentionPolicy } from '../common/contract';
import { DEFAULT_RETENTION } from '../common/contract';
import { cursorOfKey, readLatest } from './checkpoint';
import { readServing } from './promotion';
import { getJson, ObjectNotFoundError, type ObjectStore } from './store';
import { runKeys } from '../common/store-layout';

interface Listed { key: string; epoch: number; batch: number; attempt: number }

const order = (a: Listed, b: Listed) => a.epoch - b.epoch || a.batch - b.batch || a.attempt - b.attempt;

// The checkpoints to keep among `all`, given latest's key and the always-kept set.
export function checkpointsToKeep(all: Listed[], latestKey: string, policy: Required<RetentionPolicy>, pinned: Set<string>): Set<string> {
  const keep = new Set<string>(pinned);
  keep.add(latestKey);
  const latest = all.find((c) => c.key === latestKey) ?? cursorOfListed(latestKey);
  if (!latest) return new Set(all.map((c) => c.key));  // latest.json names something unparsable: keep all
  const sorted = [...all].sort(order);
  if (sorted.length && sorted[0].epoch === 0 && sorted[0].batch === 0) keep.add(sorted[0].key);  // the initial state
  for (const c of sorted) if (order(c, latest) >= 0) keep.add(c.key);  // at or after latest: untouched
  // The last checkpoint of each epoch before latest's: the epoch ends. Every
  // keepEpochEvery-th is kept (0: none).
  const lastOfEpoch = new Map<number, Listed>();
  for (const c of sorted) if (c.epoch < latest.epoch) lastOfEpoch.set(c.epoch, c);
  const epochEnds = new Set([...lastOfEpoch.values()].map((c) => c.key));
  if (policy.keepEpochEvery > 0) {
    for (const [epoch, c] of lastOfEpoch) if ((epoch + 1) % policy.keepEpochEvery === 0) keep.add(c.key);
  }
  // The newest keepLast mid-epoch checkpoints before latest's: the fallbacks a resume takes
  // should latest.json's checkpoint turn out corrupt.
  const midEpoch = sorted.filter((c) => order(c, latest) < 0 && !epochEnds.has(c.key) && !(c.epoch === 0 && c.batch === 0));
  for (const c of midEpoch.slice(Math.max(0, midEpoch.length - policy.keepLast))) keep.add(c.key);
  return keep;
}

function cursorOfListed(key: string): Listed | undefined {
  const c = cursorOfKey(key);
  return c && { key, ...c };
}

// Checkpoints named by the run's reports, evaluation holds and serving.json (the promoted
// one inference serves), and the best epoch's.
async function pinnedCheckpoints(store: ObjectStore, runId: string): Promise<Set<string>> {
  const keys = runKeys(runId);
  const pinned = new Set<string>();
  // An unreadable serving.json throws (readServing names it): this pass then deletes
  // nothing, rather than the checkpoint inference serves.
  const serving = await readServing(store, runId);
  if (serving) pinned.add(serving.checkpoint);
  for (const prefix of [keys.reports, keys.holds]) {
    for await (const o of store.list(prefix)) {
      if (!o.key.endsWith('.json') || (prefix === keys.reports && !o.key.endsWith('/report.json'))) continue;
      // A hold released (deleted) since the listing pins nothing; an unreadable report or
      // hold throws, like serving.json, so the pass deletes nothing it might name.
      const named = await getJson<{ checkpointKey?: string; checkpoint?: string }>(store, o.key).catch((e: unknown) => {
        if (e instanceof ObjectNotFoundError) return undefined;
        throw e;
      });
      for (const k of [named?.checkpointKey, named?.checkpoint]) if (typeof k === 'string') pinned.add(k);
    }
  }
  if (await store.head(keys.metrics)) {
    let best: { error: number; key: string } | undefined;
    for (const line of (await store.get(keys.metrics)).toString().split('\n')) {
      if (!line.trim()) continue;
      try {
        const r = JSON.parse(line) as { kind?: string; validation?: { top1Error?: number }; train?: { checkpointKey?: string } };
        const error = r.validation?.top1Error, key = r.train?.checkpointKey;
        if (r.kind === 'epoch' && typeof error === 'number' && key && (!best || error < best.error)) best = { error, key };
      } catch {
        // a torn last line (a writer killed mid-append) pins nothing
      }
    }
    if (best) pinned.add(best.key);
  }
  return pinned;
}

// Deletes what the policy does not keep; returns the deleted keys (for the metrics) and
// first records them in runs/<run>/deletions/<after>.json, so what an attempt deleted is
// on record even when that attempt is later killed. `after`: the checkpoint this attempt
// just wrote and pointed latest.json at (saveCheckpoint). latest.json is read again here:
// a zombie attempt whose write raced this attempt's may have moved it back since, and
// whichever of the two is older is the one taken as latest, so neither is deleted.
export async function pruneCheckpoints(store: ObjectStore, runId: string, policy: RetentionPolicy | undefined, after: string): Promise<string[]> {
  const p: Required<RetentionPolicy> = { ...DEFAULT_RETENTION, ...policy };
  if (p.keepAll) return [];
  const all: Listed[] = [];
  for await (const o of store.list(runKeys(runId).checkpoints)) {
    const c = cursorOfListed(o.key);
    if (c) all.push(c);
  }
  const pointed = cursorOfListed((await readLatest(store, runId))?.key ?? '');
  const ours = cursorOfListed(after);
  const cut = pointed && ours && order(pointed, ours) < 0 ? pointed.key : after;
  const keep = checkpointsToKeep(all, cut, p, await pinnedCheckpoints(store, runId));
  const doomed = all.filter((c) => !keep.has(c.key)).map((c) => c.key);
  if (!doomed.length) return doomed;
  await store.put(runKeys(runId).deletionLog(after), JSON.stringify({ after, deleted: doomed, at: new Date().toISOString() }));
  for (const key of doomed) await store.delete(key);
  return doomed;
}

// An evaluation's hold on its checkpoint while it runs (see the top).
export async function holdCheckpoint(store: ObjectStore, runId: string, holder: string, checkpoint: string): Promise<void> {
  await store.put(runKeys(runId).hold(holder), JSON.stringify({ checkpoint, since: new Date().toISOString() }));
}

export async function releaseCheckpoint(store: ObjectStore, runId: string, holder: string): Promise<void> {
  await store.delete(runKeys(runId).hold(holder));
}
