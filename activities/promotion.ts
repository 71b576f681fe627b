// Promotion: EvaluateAlexNet with promote moves runs/<run>/serving.json, the checkpoint
// inference serves, to the evaluated checkpoint when its top-1 error beats the one
// serving.json names on the same split and crops (or none is named, or the one named is
// gone). serving.json is written last and whole (an object put is atomic), so a reader
// sees the old pointer or the new one.
import type { PromotionResult, ServingPointer } from '../common/contract';
import { CHECKPOINT_KEY_FORM, parseCheckpointKey, runKeys } from '../common/store-layout';
import { describe } from '../common/validate';
import { openStore, readStateObject, type ObjectStore } from './store';

export interface PromotionInput {
  store: string;
  runId: string;
  checkpointKey: string;
  split: string;
  crops: 1 | 10;
  images: number;
  top1Error: number;
  top5Error: number;
  report: string;
  evaluation: string;
}

// The run's serving.json, undefined when nothing was promoted. Checked: an object naming
// a checkpoint of this run, its figures (when given) of the right types; else a
// StateError naming the file: a corrupt pointer is neither served from nor replaced.
export async function readServing(store: ObjectStore, runId: string): Promise<ServingPointer | undefined> {
  const read = await readStateObject(store, runKeys(runId).serving, 'a pointer object',
    'Restore it, or remove it (inference then serves the newest checkpoint; alexnet eval --promote writes it again)');
  if (!read) return undefined;
  const { value: p, corrupt: bad } = read;
  const c = typeof p.checkpoint === 'string' ? parseCheckpointKey(p.checkpoint) : undefined;
  if (!c || c.runId !== runId) throw bad(`its checkpoint ${describe(p.checkpoint)} is not a checkpoint of run ${runId} (${CHECKPOINT_KEY_FORM})`);
  for (const f of ['top1Error', 'top5Error', 'images'] as const) {
    if (p[f] !== undefined && !(typeof p[f] === 'number' && Number.isFinite(p[f]))) throw bad(`its ${f} is ${describe(p[f])}, not a number`);
  }
  for (const f of ['split', 'report', 'evaluation', 'promotedAt', 'previous'] as const) {
    if (p[f] !== undefined && typeof p[f] !== 'string') throw bad(`its ${f} is ${describe(p[f])}, not a string`);
  }
  if (p.crops !== undefined && p.crops !== 1 && p.crops !== 10) throw bad(`its crops is ${describe(p.crops)}, not 1 or 10`);
  return p as unknown as ServingPointer;
}

// Whether the evaluated checkpoint should replace the serving one, and why (pure).
export function promotionDecision(current: ServingPointer | undefined, currentExists: boolean, candidate: PromotionInput): { promote: boolean; reason: string } {
  if (!current) return { promote: true, reason: 'no checkpoint was promoted yet' };
  if (current.checkpoint === candidate.checkpointKey) return { promote: false, reason: 'this checkpoint is already the one serving' };
  if (!currentExists) return { promote: true, reason: `the promoted ${current.checkpoint} is no longer in the store` };
  if (current.split !== candidate.split || current.crops !== candidate.crops) {
    return { promote: false, reason: `serving.json's figures are on split '${current.split}' with ${current.crops} crop(s): evaluate with --split ${current.split} --crops ${current.crops} to compare` };
  }
  const pct = (e: number) => `${(100 * e).toFixed(2)}%`;
  return candidate.top1Error < current.top1Error
    ? { promote: true, reason: `top-1 error ${pct(candidate.top1Error)} beats ${pct(current.top1Error)} of ${current.checkpoint}` }
    : { promote: false, reason: `top-1 error ${pct(candidate.top1Error)} does not beat ${pct(current.top1Error)} of ${current.checkpoint}` };
}

export async function promoteCheckpoint(input: PromotionInput): Promise<PromotionResult> {
  const store = openStore(input.store);
  const key = runKeys(input.runId).serving;
  const current = await readServing(store, input.runId);
  const exists = current ? (await store.head(current.checkpoint)) !== undefined : false;
  const decision = promotionDecision(current, exists, input);
  if (!decision.promote) return { promoted: false, serving: current?.checkpoint ?? input.checkpointKey, reason: decision.reason };
  const pointer: ServingPointer = {
    checkpoint: input.checkpointKey, top1Error: input.top1Error, top5Error: input.top5Error, split: input.split, crops: input.crops,
    images: input.images, report: input.report, evaluation: input.evaluation, promotedAt: new Date().toISOString(),
    ...(current ? { previous: current.checkpoint } : {}),
  };
  await store.put(key, JSON.stringify(pointer, null, 1));
  return { promoted: true, serving: input.checkpointKey, reason: decision.reason };
}
