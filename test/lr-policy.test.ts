// The learning-rate policy: the paper's plateau rule on synthetic error curves, the
// threshold, step and fixed schedules, signal overrides, validation messages, purity,
// and JSON round trips of the state (it is carried across continueAsNew).
import test from 'ava';

import { decideLr, initialLrState, LrDecision, LrPolicy, LrState, overrideLr, validateLrPolicy } from '../common/lr-policy';

// Runs a policy over a curve of validation errors; returns every decision in order.
function run(policy: LrPolicy, errors: number[], state = initialLrState(policy)): LrDecision[] {
  const out: LrDecision[] = [];
  for (const e of errors) {
    const d = decideLr(policy, state, e);
    out.push(d);
    state = d.state;
  }
  return out;
}

const paper = validateLrPolicy({ type: 'plateau' });

test('lr-policy: defaults are the paper\'s: 0.01, divide by 10, patience 3, three reductions', (t) => {
  t.deepEqual(paper, { type: 'plateau', initialLr: 0.01, factor: 0.1, patience: 3, threshold: 0.001, maxReductions: 3, finalPatience: 3 });
  t.deepEqual(validateLrPolicy({ type: 'plateau', patience: 5 }), { ...paper, patience: 5, finalPatience: 5 });
  t.deepEqual(validateLrPolicy({ type: 'step', everyEpochs: 30 }), { type: 'step', initialLr: 0.01, factor: 0.1, everyEpochs: 30 });
  t.deepEqual(validateLrPolicy({ type: 'fixed' }), { type: 'fixed', lr: 0.01 });
  t.deepEqual(initialLrState(paper), {
    lr: 0.01, bestError: null, epochsSinceImprovement: 0, reductions: 0, epoch: 0,
    history: [{ epoch: 0, lr: 0.01, reason: 'initial learning rate' }],
  });
});

test('lr-policy: the paper\'s schedule drops exactly after patience flat epochs, three times, then stops', (t) => {
  // Improve, then a flat stretch of `patience` epochs, four times over.
  const curve = [
    0.9, 0.8, 0.7, 0.7, 0.7, 0.7,   // epochs 1-6: drop after 6
    0.6, 0.5, 0.5, 0.5, 0.5,        // 7-11: drop after 11
    0.45, 0.45, 0.45, 0.45,         // 12-15: drop after 15
    0.44, 0.44, 0.44, 0.44,         // 16-19: stop after 19
  ];
  const ds = run(paper, curve);
  t.deepEqual(ds.map((d) => d.lr), [
    0.01, 0.01, 0.01, 0.01, 0.01, 0.001,
    0.001, 0.001, 0.001, 0.001, 0.0001,
    0.0001, 0.0001, 0.0001, 0.00001,
    0.00001, 0.00001, 0.00001, 0.00001,
  ]);
  t.deepEqual(ds.map((d, i) => (d.stop ? i + 1 : 0)).filter(Boolean), [19]);
  const last = ds[ds.length - 1];
  t.deepEqual(last.state.history, [
    { epoch: 0, lr: 0.01, reason: 'initial learning rate' },
    { epoch: 6, lr: 0.001, reason: 'no improvement for 3 epochs (best 0.7): 0.01 -> 0.001' },
    { epoch: 11, lr: 0.0001, reason: 'no improvement for 3 epochs (best 0.5): 0.001 -> 0.0001' },
    { epoch: 15, lr: 0.00001, reason: 'no improvement for 3 epochs (best 0.45): 0.0001 -> 0.00001' },
  ]);
  t.is(last.state.reductions, 3);
  t.is(last.state.epoch, 19);
  t.is(last.state.bestError, 0.44);
  t.is(last.reason, 'no improvement for 3 epochs after 3 reductions (best 0.44): stop training');
  t.is(ds[5].reason, 'no improvement for 3 epochs (best 0.7): 0.01 -> 0.001');
  t.regex(ds[4].reason, /no improvement for 2 of 3 epochs at lr 0.01/);
});

test('lr-policy: an improvement inside the patience window restarts the count', (t) => {
  const ds = run(paper, [0.8, 0.8, 0.8, 0.7, 0.7, 0.7, 0.7]);
  t.deepEqual(ds.map((d) => d.state.epochsSinceImprovement), [0, 1, 2, 0, 1, 2, 0]);
  t.deepEqual(ds.map((d) => d.lr), [0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.001]);
});

test('lr-policy: a worse epoch counts as no improvement and the best error is kept across a drop', (t) => {
  const ds = run(paper, [0.5, 0.6, 0.55, 0.52, 0.51]);
  t.is(ds[3].lr, 0.001);
  t.is(ds[3].state.bestError, 0.5);
  // 0.51 does not beat the best reached at the old LR, so the new LR is not yet improving.
  t.is(ds[4].state.epochsSinceImprovement, 1);
});

test('lr-policy: an improvement smaller than the threshold does not count', (t) => {
  const policy = validateLrPolicy({ type: 'plateau', threshold: 0.01 });
  // Creeping down 0.003 an epoch stays within threshold 0.01 of the best for 3 epochs: a plateau.
  const creep = run(policy, [0.5, 0.497, 0.494, 0.491]);
  t.deepEqual(creep.map((d) => d.state.bestError), [0.5, 0.5, 0.5, 0.5]);
  t.is(creep[3].lr, 0.001);
  // Exactly best - threshold is not an improvement either; anything below it is.
  const edge = run(policy, [0.5, 0.49, 0.4899]);
  t.is(edge[1].state.epochsSinceImprovement, 1);
  t.is(edge[2].state.epochsSinceImprovement, 0);
  t.is(edge[2].state.bestError, 0.4899);
  t.regex(edge[2].reason, /validation error 0.4899 improved on 0.5/);
  // Threshold 0: any strict decrease counts.
  const strict = run(validateLrPolicy({ type: 'plateau', threshold: 0 }), [0.5, 0.4999, 0.4999]);
  t.deepEqual(strict.map((d) => d.state.epochsSinceImprovement), [0, 0, 1]);
});

test('lr-policy: finalPatience and maxReductions shape the end of the plateau schedule', (t) => {
  const policy = validateLrPolicy({ type: 'plateau', patience: 2, maxReductions: 1, finalPatience: 4 });
  const ds = run(policy, [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]);
  t.deepEqual(ds.map((d) => d.lr), [0.01, 0.01, 0.001, 0.001, 0.001, 0.001, 0.001]);
  t.deepEqual(ds.map((d) => d.stop), [false, false, false, false, false, false, true]);
  // No reductions at all: early stopping only.
  const none = run(validateLrPolicy({ type: 'plateau', maxReductions: 0 }), [0.5, 0.5, 0.5, 0.5]);
  t.deepEqual(none.map((d) => [d.lr, d.stop]), [[0.01, false], [0.01, false], [0.01, false], [0.01, true]]);
});

test('lr-policy: step multiplies by the factor every N epochs, up to maxReductions', (t) => {
  const policy = validateLrPolicy({ type: 'step', everyEpochs: 2, maxReductions: 2 });
  const ds = run(policy, [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3]);
  t.deepEqual(ds.map((d) => d.lr), [0.01, 0.001, 0.001, 0.0001, 0.0001, 0.0001, 0.0001]);
  t.false(ds.some((d) => d.stop));
  t.deepEqual(ds[6].state.history.map((h) => [h.epoch, h.lr]), [[0, 0.01], [2, 0.001], [4, 0.0001]]);
  t.is(ds[1].reason, 'step every 2 epochs: 0.01 -> 0.001');
  // Without maxReductions it keeps stepping, whatever the error does.
  const unlimited = run(validateLrPolicy({ type: 'step', everyEpochs: 1, factor: 0.5, initialLr: 0.08 }), [0.5, 0.6, 0.7, 0.8]);
  t.deepEqual(unlimited.map((d) => d.lr), [0.04, 0.02, 0.01, 0.005]);
});

test('lr-policy: fixed never changes the LR or stops, and history stays at the initial entry', (t) => {
  const ds = run(validateLrPolicy({ type: 'fixed', lr: 0.005 }), Array.from({ length: 20 }, () => 0.5));
  t.true(ds.every((d) => d.lr === 0.005 && !d.stop));
  t.is(ds[19].state.history.length, 1);
  t.is(ds[19].state.epoch, 20);
  t.is(ds[19].state.epochsSinceImprovement, 19);
});

test('lr-policy: an override sets the LR, restarts the patience count and keeps best and reductions', (t) => {
  const ds = run(paper, [0.5, 0.5, 0.5]);
  const before = ds[2].state;
  t.is(before.epochsSinceImprovement, 2);
  const over = overrideLr(before, 0.003, 'operator: loss is noisy');
  t.is(over.lr, 0.003);
  t.is(over.epochsSinceImprovement, 0);
  t.is(over.bestError, 0.5);
  t.is(over.reductions, 0);
  t.deepEqual(over.history[over.history.length - 1], { epoch: 3, lr: 0.003, reason: 'operator: loss is noisy' });
  // Without the override the next flat epoch would drop the LR; with it, patience starts over.
  t.is(decideLr(paper, before, 0.5).lr, 0.001);
  const after = run(paper, [0.5, 0.5, 0.5], over);
  t.deepEqual(after.map((d) => d.lr), [0.003, 0.003, 0.0003]);
  t.is(after[2].state.reductions, 1);
  // Step and fixed follow the override from the next epoch on.
  const step = validateLrPolicy({ type: 'step', everyEpochs: 2 });
  const s = overrideLr(decideLr(step, initialLrState(step), 0.5).state, 0.02, 'warm restart');
  t.is(decideLr(step, s, 0.5).lr, 0.002);
  const fixed = validateLrPolicy({ type: 'fixed' });
  t.is(decideLr(fixed, overrideLr(initialLrState(fixed), 0.02, 'x'), 0.5).lr, 0.02);
  // A blank reason gets a default; a long one is cut to keep the state small.
  t.is(overrideLr(before, 0.001, '  ').history[1].reason, 'set by signal');
  t.is(overrideLr(before, 0.001, 'y'.repeat(1000)).history[1].reason.length, 200);
});

test('lr-policy: overrides and validation errors are refused with messages naming the field', (t) => {
  const cases: [unknown, string][] = [
    [null, 'Expected object with type "plateau", "step" or "fixed" for lrPolicy but received null'],
    [[], 'Expected object with type "plateau", "step" or "fixed" for lrPolicy but received array(0)'],
    [{ type: 'cosine' }, 'Expected one of "plateau", "step", "fixed" for lrPolicy.type but received "cosine"'],
    [{ type: 'plateau', patience: 0 }, 'Expected integer between 1 and 1000 for lrPolicy.patience but received 0'],
    [{ type: 'plateau', patience: 2.5 }, 'Expected integer between 1 and 1000 for lrPolicy.patience but received 2.5'],
    [{ type: 'plateau', factor: 1 }, 'Expected number greater than 0 and less than 1 for lrPolicy.factor but received 1'],
    [{ type: 'plateau', initialLr: 0 }, 'Expected number greater than 0 and at most 10 for lrPolicy.initialLr but received 0'],
    [{ type: 'plateau', initialLr: '0.01' }, 'Expected number greater than 0 and at most 10 for lrPolicy.initialLr but received "0.01"'],
    [{ type: 'plateau', threshold: -0.1 }, 'Expected number between 0 and 1 for lrPolicy.threshold but received -0.1'],
    [{ type: 'plateau', maxReductions: -1 }, 'Expected integer between 0 and 100 for lrPolicy.maxReductions but received -1'],
    [{ type: 'plateau', finalPatience: null }, 'Expected integer between 1 and 1000 for lrPolicy.finalPatience but received null'],
    [{ type: 'plateau', patiance: 5 }, 'Unknown field "patiance" in lrPolicy (a plateau policy); did you mean "patience"? Known fields: type, initialLr, factor, patience, threshold, maxReductions, finalPatience'],
    [{ type: 'fixed', initialLr: 0.1 }, 'Unknown field "initialLr" in lrPolicy (a fixed policy). Known fields: type, lr'],
    [{ type: 'step' }, 'Expected integer between 1 and 1000 for lrPolicy.everyEpochs but received undefined'],
    [{ type: 'step', everyEpochs: 0 }, 'Expected integer between 1 and 1000 for lrPolicy.everyEpochs but received 0'],
    [{ type: 'fixed', lr: Infinity }, 'Expected number greater than 0 and at most 10 for lrPolicy.lr but received Infinity'],
  ];
  for (const [raw, message] of cases) t.throws(() => validateLrPolicy(raw), { name: 'ArgumentError', message }, JSON.stringify(raw));
  t.throws(() => validateLrPolicy({ type: 'plateau', patience: 0 }, 'input.lrPolicy'), { message: /for input\.lrPolicy\.patience / });

  const state = initialLrState(paper);
  t.throws(() => decideLr(paper, state, NaN), {
    name: 'ArgumentError',
    message: 'Expected number between 0 and 1 (NaN: did the evaluation see no images, or did training diverge?) for validationError but received NaN',
  });
  t.throws(() => decideLr(paper, state, 41.2), { message: 'Expected number between 0 and 1 for validationError but received 41.2' });
  t.throws(() => decideLr(paper, state, -0.01), { message: /for validationError/ });
  t.throws(() => overrideLr(state, 0, 'x'), { message: 'Expected number greater than 0 and at most 10 for lr but received 0' });
  t.throws(() => overrideLr(state, NaN, 'x'), { message: /for lr but received NaN/ });
  // Boundaries are accepted.
  t.notThrows(() => decideLr(paper, state, 0));
  t.notThrows(() => decideLr(paper, state, 1));
});

test('lr-policy: decisions are pure: inputs are not mutated and equal inputs give equal outputs', (t) => {
  const policy = validateLrPolicy({ type: 'plateau', patience: 1 });
  const raw = { type: 'plateau', patience: 1 };
  validateLrPolicy(raw);
  t.deepEqual(raw, { type: 'plateau', patience: 1 });
  const base = run(policy, [0.5])[0].state;
  const policyCopy = JSON.parse(JSON.stringify(policy)) as LrPolicy;
  const stateCopy = JSON.parse(JSON.stringify(base)) as LrState;
  const a = decideLr(policy, base, 0.5);  // drops: the history grows in the new state only
  const b = decideLr(policy, base, 0.5);
  t.deepEqual(a, b);
  t.is(a.state.history.length, 2);
  t.not(a.state.history, base.history);
  t.deepEqual(base, stateCopy);
  t.deepEqual(policy, policyCopy);
  const o = overrideLr(base, 0.5, 'x');
  t.deepEqual(base, stateCopy);
  t.not(o, base);
});

test('lr-policy: state survives a JSON round trip mid-schedule and continues identically', (t) => {
  const curve = [0.9, 0.8, 0.8, 0.8, 0.8, 0.7, 0.7, 0.7, 0.7, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6];
  const whole = run(paper, curve);
  for (let cut = 0; cut <= curve.length; cut++) {
    // As continueAsNew would: serialize the state, start again from the parsed copy.
    const first = cut === 0 ? initialLrState(paper) : whole[cut - 1].state;
    const carried = JSON.parse(JSON.stringify(first)) as LrState;
    t.deepEqual(carried, first);
    const rest = run(JSON.parse(JSON.stringify(paper)) as LrPolicy, curve.slice(cut), carried);
    t.deepEqual(rest, whole.slice(cut), `cut at ${cut}`);
  }
  // The initial state's null best error survives too, and the state stays small.
  t.deepEqual(JSON.parse(JSON.stringify(initialLrState(paper))), initialLrState(paper));
  t.true(JSON.stringify(whole[whole.length - 1].state).length < 1000);
});
