// Learning-rate decisions for TrainAlexNet, as pure functions of (policy, state, error).
// They run inside workflow code, so: no I/O, no clock, no randomness, and a state that is
// small and plain JSON, because it rides across continueAsNew and is replayed on resume.
//
// The paper: "divide the learning rate by 10 when the validation error rate stopped
// improving with the current learning rate", three times. In 2012 each drop was a hand
// edit of the config on restart (ILSVRC-2012: 0.01 -> 0.001 at epoch 25 -> 0.0001 at 51);
// the plateau policy automates that judgement, and the setLearningRate signal
// (overrideLr) keeps the human in the loop.
import { integerIn, invalid, numberIn, oneOf, refuseUnknownFields } from './validate';

export interface PlateauPolicy {
  type: 'plateau';
  initialLr: number;
  factor: number;         // multiply the LR by this on a plateau
  patience: number;       // epochs without improvement before a reduction
  threshold: number;      // an epoch improves when error < best - threshold (absolute)
  maxReductions: number;  // reductions before the policy starts waiting to stop
  finalPatience: number;  // epochs without improvement, after the last reduction, before stopping
}

export interface StepPolicy {
  type: 'step';
  initialLr: number;
  factor: number;
  everyEpochs: number;
  maxReductions?: number; // absent: no limit
}

export interface FixedPolicy {
  type: 'fixed';
  lr: number;
}

export type LrPolicy = PlateauPolicy | StepPolicy | FixedPolicy;

export interface LrChange {
  epoch: number;  // epochs completed when the LR was set; it applies from the next epoch on
  lr: number;
  reason: string;
}

export interface LrState {
  lr: number;                      // the LR for the next epoch
  bestError: number | null;        // best validation error so far (kept across LR changes)
  epochsSinceImprovement: number;  // at the current LR: any LR change restarts the count
  reductions: number;              // by the policy; overrides are not counted
  epoch: number;                   // epochs completed
  history: LrChange[];             // the initial LR and every change, nothing else
}

export interface LrDecision {
  state: LrState;
  lr: number;      // = state.lr, the LR for the next epoch
  stop: boolean;   // plateau only: no improvement for finalPatience epochs after the last reduction
  reason: string;
}

const MAX_LR = 10;            // far above any sane SGD LR: catches typos, not experiments
const MAX_EPOCHS = 1000;
const MAX_REDUCTIONS = 100;
const MAX_REASON = 200;       // overrides carry a human's reason; keep the state small

const FIELDS = {
  plateau: ['type', 'initialLr', 'factor', 'patience', 'threshold', 'maxReductions', 'finalPatience'],
  step: ['type', 'initialLr', 'factor', 'everyEpochs', 'maxReductions'],
  fixed: ['type', 'lr'],
} as const;

function positiveLr(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > MAX_LR) {
    throw invalid(name, `number greater than 0 and at most ${MAX_LR}`, value);
  }
  return value;
}

function reductionFactor(name: string, value: unknown): number {
  // 1 would never reduce and > 1 would grow the LR: neither is a schedule anyone means.
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value >= 1) {
    throw invalid(name, 'number greater than 0 and less than 1', value);
  }
  return value;
}

// Validates a policy from JSON (workflow input, CLI) and fills in the defaults. Unknown
// fields are refused so that a typo ("patiance") fails loudly rather than silently
// falling back to a default.
export function validateLrPolicy(raw: unknown, name = 'lrPolicy'): LrPolicy {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw invalid(name, 'object with type "plateau", "step" or "fixed"', raw);
  }
  const o = raw as Record<string, unknown>;
  const type = oneOf(`${name}.type`, o.type, ['plateau', 'step', 'fixed'] as const);
  refuseUnknownFields(name, o, FIELDS[type], `${name} (a ${type} policy)`);
  const given = (key: string) => o[key] !== undefined;
  switch (type) {
    case 'plateau': {
      const patience = given('patience') ? integerIn(`${name}.patience`, o.patience, 1, MAX_EPOCHS) : 3;
      return {
        type,
        initialLr: given('initialLr') ? positiveLr(`${name}.initialLr`, o.initialLr) : 0.01,
        factor: given('factor') ? reductionFactor(`${name}.factor`, o.factor) : 0.1,
        patience,
        threshold: given('threshold') ? numberIn(`${name}.threshold`, o.threshold, 0, 1) : 0.001,
        maxReductions: given('maxReductions') ? integerIn(`${name}.maxReductions`, o.maxReductions, 0, MAX_REDUCTIONS) : 3,
        finalPatience: given('finalPatience') ? integerIn(`${name}.finalPatience`, o.finalPatience, 1, MAX_EPOCHS) : patience,
      };
    }
    case 'step': {
      if (!given('everyEpochs')) throw invalid(`${name}.everyEpochs`, `integer between 1 and ${MAX_EPOCHS}`, undefined);
      const policy: StepPolicy = {
        type,
        initialLr: given('initialLr') ? positiveLr(`${name}.initialLr`, o.initialLr) : 0.01,
        factor: given('factor') ? reductionFactor(`${name}.factor`, o.factor) : 0.1,
        everyEpochs: integerIn(`${name}.everyEpochs`, o.everyEpochs, 1, MAX_EPOCHS),
      };
      // Left out rather than undefined: the policy is compared and serialized as JSON.
      if (given('maxReductions')) policy.maxReductions = integerIn(`${name}.maxReductions`, o.maxReductions, 0, MAX_REDUCTIONS);
      return policy;
    }
    case 'fixed':
      return { type, lr: given('lr') ? positiveLr(`${name}.lr`, o.lr) : 0.01 };
  }
}

export function initialLrState(policy: LrPolicy): LrState {
  const lr = policy.type === 'fixed' ? policy.lr : policy.initialLr;
  return { lr, bestError: null, epochsSinceImprovement: 0, reductions: 0, epoch: 0, history: [{ epoch: 0, lr, reason: 'initial learning rate' }] };
}

// 12 significant digits: 0.01 * 0.1 * 0.1 * 0.1 is 0.00001 as the paper writes it, not
// 1.0000000000000002e-5, so logs, history and comparisons read exactly. toPrecision is
// exactly specified, so this stays deterministic under replay.
function scaled(lr: number, factor: number): number {
  return Number((lr * factor).toPrecision(12));
}

function fmt(x: number): string {
  return String(Number(x.toPrecision(4)));
}

function changed(state: LrState, lr: number, reason: string): LrState {
  return { ...state, lr, epochsSinceImprovement: 0, history: [...state.history, { epoch: state.epoch, lr, reason }] };
}

// Called once after each epoch with that epoch's validation error (top-1, as a fraction).
// Returns a new state; the inputs are left untouched.
export function decideLr(policy: LrPolicy, state: LrState, validationError: number): LrDecision {
  if (Number.isNaN(validationError)) {
    throw invalid('validationError', 'number between 0 and 1 (NaN: did the evaluation see no images, or did training diverge?)', validationError);
  }
  numberIn('validationError', validationError, 0, 1);

  // Improvement is judged the same way for every policy (the state reports it), but only
  // plateau acts on it, and only plateau has a threshold.
  const threshold = policy.type === 'plateau' ? policy.threshold : 0;
  const previousBest = state.bestError;
  const improved = previousBest === null || validationError < previousBest - threshold;
  let next: LrState = {
    ...state,
    epoch: state.epoch + 1,
    bestError: improved ? validationError : previousBest,
    epochsSinceImprovement: improved ? 0 : state.epochsSinceImprovement + 1,
  };
  const errorText = previousBest === null ? `validation error ${fmt(validationError)}`
    : improved ? `validation error ${fmt(validationError)} improved on ${fmt(previousBest)}`
    : `validation error ${fmt(validationError)}, best ${fmt(previousBest)}`;
  const keep = (reason: string): LrDecision => ({ state: next, lr: next.lr, stop: false, reason });

  switch (policy.type) {
    case 'fixed':
      return keep(`${errorText}: fixed lr ${next.lr}`);

    case 'step': {
      const limited = policy.maxReductions !== undefined && next.reductions >= policy.maxReductions;
      if (next.epoch % policy.everyEpochs !== 0 || limited) return keep(`${errorText}: lr ${next.lr}`);
      const lr = scaled(next.lr, policy.factor);
      const reason = `step every ${policy.everyEpochs} epochs: ${next.lr} -> ${lr}`;
      next = { ...changed(next, lr, reason), reductions: next.reductions + 1 };
      return { state: next, lr, stop: false, reason };
    }

    case 'plateau': {
      const since = next.epochsSinceImprovement;
      const best = fmt(next.bestError ?? validationError);
      if (next.reductions < policy.maxReductions) {
        if (since < policy.patience) {
          return keep(improved ? `${errorText}: lr ${next.lr}` : `${errorText}: no improvement for ${since} of ${policy.patience} epochs at lr ${next.lr}`);
        }
        // The best error is kept: the next LR must beat what the last one reached.
        const lr = scaled(next.lr, policy.factor);
        const reason = `no improvement for ${since} epochs (best ${best}): ${next.lr} -> ${lr}`;
        next = { ...changed(next, lr, reason), reductions: next.reductions + 1 };
        return { state: next, lr, stop: false, reason };
      }
      if (since < policy.finalPatience) {
        return keep(improved ? `${errorText}: lr ${next.lr}` : `${errorText}: no improvement for ${since} of ${policy.finalPatience} epochs at the final lr ${next.lr}`);
      }
      return {
        state: next, lr: next.lr, stop: true,
        reason: `no improvement for ${since} epochs after ${next.reductions} reductions (best ${best}): stop training`,
      };
    }
  }
}

// The setLearningRate signal: an operator's word overrides the policy from the next epoch
// on. It restarts the patience count (the new LR deserves its own `patience` epochs) but
// keeps the best error and does not count as one of the policy's reductions.
export function overrideLr(state: LrState, lr: number, reason: string): LrState {
  positiveLr('lr', lr);
  if (typeof reason !== 'string') throw invalid('reason', 'string', reason);
  const text = reason.trim() === '' ? 'set by signal' : reason.slice(0, MAX_REASON);
  return changed(state, lr, text);
}
