// Promotion: EvaluateAlexNet with promote moves runs/<run>/serving.json, the checkpoint
// inference serves, to the evaluated checkpoint when its top-1 error beats the one
// serving.json names on the same split and crops (or none is named, or the one named is
// gone). serving.json is written last and whole (an object put is atomic), so a reader
// sees the old pointer or the new one.
import type { PromotionResult, ServingPointer } from '../common/contract';
import { runKeys } from '../common/store-layout';
import { getJson, openStore } from './store';

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
  const current = (await store.head(key)) ? await getJson<ServingPointer>(store, key) : undefined;
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
