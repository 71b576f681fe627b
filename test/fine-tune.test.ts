// Fine-tuning (issue 21) on real Fashion-MNIST through the dev server: a run trained on
// classes 0-4 starts a run on classes 5-9 with a new fc8 (TrainAlexNet initFrom, reinit,
// lrMultipliers), which after one epoch has a lower validation error than the same budget
// from scratch; the source is recorded in run.json; a fine-tune whose worker is SIGKILLed
// mid-epoch ends bitwise identical to one never interrupted; bad inputs are refused by name
// with nothing written; per-layer multipliers freeze a layer exactly.
import test from 'ava';
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

import { openStore } from '../activities/store';
import type { RunRecord, TrainAlexNetInput, TrainResult } from '../common/contract';
import { runKeys } from '../common/store-layout';
import { modelConfig, Network } from '../native/index';
import { decodeState } from '../native/state';
import { FASHION_MNIST_CLASSES } from '../scripts/importers/fashion-mnist';
import { CLI, makeBatch } from './helpers';
import { startTrainingFixture, tensorBytes, type WorkerFixture } from './temporal-helpers';

const QUEUE = 'fine-tune-test';
let fixture: WorkerFixture;
let store: string;

// A copy of the imported images with only some classes (their folders and classes.txt):
// at most `perClass` training images of each, and their test images as a val split of its
// own when `val` (else as test).
function classSubset(from: string, to: string, classes: readonly string[], opts: { perClass?: number; val?: boolean } = {}): void {
  for (const c of classes) {
    fs.mkdirSync(path.join(to, 'train', c), { recursive: true });
    for (const f of fs.readdirSync(path.join(from, 'train', c)).sort().slice(0, opts.perClass)) {
      fs.copyFileSync(path.join(from, 'train', c, f), path.join(to, 'train', c, f));
    }
    fs.cpSync(path.join(from, 'test', c), path.join(to, opts.val ? 'val' : 'test', c), { recursive: true });
  }
  fs.writeFileSync(path.join(to, 'classes.txt'), classes.join('\n') + '\n');
}

const BASE = { model: 'alexnet-32', batchSize: 8, checkpointEvery: 8, seed: 1, lrPolicy: { type: 'fixed', lr: 0.01 } } as const;

// The source: classes 0-4 (5,000 images, 6 epochs). The target: classes 5-9 with 100
// training images a class (one epoch: 62 steps of 8) and their 5,000 test images as its
// val split: little data, where starting from learnt features shows.
test.before(async () => {
  fixture = await startTrainingFixture('alexnet-fine-tune-', QUEUE, { prepare: false, images: 10000 });
  store = fixture.store;
  const names = [...FASHION_MNIST_CLASSES];
  for (const [name, classes, opts] of [['first', names.slice(0, 5), {}], ['second', names.slice(5), { perClass: 100, val: true }]] as const) {
    const dir = path.join(fixture.dir, name);
    classSubset(fixture.dataset, dir, classes, opts);
    await fixture.client.workflow.execute('PrepareDataset', { taskQueue: QUEUE, workflowId: `prepare-${name}`, args: [{ dataset: dir, store, name, imageSize: 36, shardSize: 500 }] });
  }
  await fixture.client.workflow.execute('TrainAlexNet', { taskQueue: QUEUE, workflowId: 'source', args: [{ ...BASE, store, datasetName: 'first', epochs: 6, batchSize: 16, checkpointEvery: 50, seed: 3 }] });
});

test.after.always(async () => {
  await fixture?.stop();
});

const train = (workflowId: string, input: Partial<TrainAlexNetInput>, taskQueue = QUEUE) =>
  fixture.client.workflow.execute('TrainAlexNet', { taskQueue, workflowId, args: [{ ...BASE, store, datasetName: 'second', epochs: 1, ...input }] }) as Promise<TrainResult & { latestCheckpoint: string }>;

test.serial('fine-tuning classes 5-9 from a run on classes 0-4 with a new fc8 beats the same budget from scratch after one epoch', async (t) => {
  const tuned = await train('tuned', { initFrom: { run: 'source' }, reinit: ['fc8'] });
  const scratch = await train('scratch', {});
  const [e1, e0] = [tuned.lastValidation!.top1Error, scratch.lastValidation!.top1Error];
  t.log(`validation top-1 error after one epoch on classes 5-9 (${tuned.lastValidation!.images} images): fine-tuned ${(100 * e1).toFixed(1)}%, from scratch ${(100 * e0).toFixed(1)}%`);
  t.true(e1 < e0 - 0.05, `fine-tuned ${e1} well below scratch ${e0}`);
  const record = JSON.parse((await openStore(store).get(runKeys('tuned').record)).toString()) as RunRecord;
  t.deepEqual(record.initFrom?.source, { run: 'source' });
  t.is(record.initFrom?.sourceRun, 'source');
  t.regex(record.initFrom?.from ?? '', /^runs\/source\/checkpoints\/0*5-\d+-\d+\.safetensors$/, 'the source run\'s newest checkpoint');
  t.deepEqual(record.initFrom?.reinit, ['fc8']);
  t.is(record.lrMultipliers, undefined);
});

test.serial('a fine-tune whose worker is SIGKILLed mid-epoch ends bitwise identical to one never interrupted', async (t) => {
  const input = { initFrom: { run: 'source' }, reinit: ['fc8'], lrMultipliers: { conv1: 0 } };
  const reference = await train('tuned-reference', input);
  const env = { ...process.env, TEMPORAL_ADDRESS: fixture.temporal.address };
  const spawned: ReturnType<typeof spawn>[] = [];
  t.teardown(() => spawned.forEach((w) => w.kill('SIGKILL')));
  const spawnWorker = () => {
    const w = spawn(process.execPath, [CLI, 'worker', '--task-queue', 'fine-tune-kill'], { env, stdio: 'ignore' });
    spawned.push(w);
    return w;
  };
  let worker = spawnWorker();
  const run = train('tuned-killed', input, 'fine-tune-kill');
  run.catch(() => undefined);
  const s = openStore(store);
  // Kill it once it has checkpointed mid-epoch (past batch 0), then start another worker.
  for (let i = 0; i < 2400; i++) {
    await new Promise((r) => setTimeout(r, 25));
    const latest = await s.head(runKeys('tuned-killed').latest) ? JSON.parse((await s.get(runKeys('tuned-killed').latest)).toString()) as { epoch: number; batch: number } : undefined;
    if (latest && latest.epoch === 0 && latest.batch > 0) break;
  }
  const gone = new Promise((r) => worker.once('exit', r));
  worker.kill('SIGKILL');
  await gone;
  worker = spawnWorker();
  const killed = await run;
  t.true(tensorBytes(await s.get(killed.latestCheckpoint)).equals(tensorBytes(await s.get(reference.latestCheckpoint))), 'weights, momentum and RNG state identical');
  // conv1 frozen (lrMultipliers 0): exactly the source's weights.
  const sourceLatest = JSON.parse((await s.get(runKeys('source').latest)).toString()) as { key: string };
  const conv1 = async (key: string) => {
    const w = decodeState(await s.get(key), key).tensors.get('conv1.weight')!.data as Float32Array;
    return Buffer.from(w.buffer, w.byteOffset, w.byteLength);
  };
  t.true((await conv1(reference.latestCheckpoint)).equals(await conv1(sourceLatest.key)), 'conv1 frozen at the source\'s weights');
  const record = JSON.parse((await s.get(runKeys('tuned-killed').record)).toString()) as RunRecord;
  t.deepEqual(record.lrMultipliers, { conv1: 0 });
});

test.serial('bad fine-tuning inputs are refused by name before anything is written', async (t) => {
  const cases: [string, Partial<TrainAlexNetInput>, RegExp][] = [
    ['ft-no-source', { initFrom: { run: 'no-such-run' } }, /run 'no-such-run' has no checkpoint/],
    ['ft-bad-layer', { initFrom: { run: 'source' }, reinit: ['fc9'] }, /Unknown layer "fc9" in reinit \(the layers of alexnet-32 with parameters\); did you mean "fc8"\? Known layers: conv1, /],
    ['ft-bad-mult', { lrMultipliers: { conv6: 2 } }, /Unknown layer "conv6" in lrMultipliers; did you mean "conv5"\?/],
    ['ft-arch', { initFrom: { run: 'source' }, model: 'tiny' }, /initFrom runs\/source\/checkpoints\/.*: tensor 'conv1.weight' is F32 \[.*\] but the network needs F32 \[.*\].*add 'conv1' to reinit/],
    ['ft-class-count', { initFrom: { run: 'source' }, reinit: [], classes: 7 }, /tensor 'fc8.weight' is F32 \[5,\d+\] but the network needs F32 \[7,\d+\]/],
    ['ft-two-sources', { initFrom: { run: 'source', checkpoint: 'x' } as never }, /one of them/],
    ['ft-missing-file', { initFrom: { weights: `file://${fixture.dir}/nothing.safetensors` } }, /nothing\.safetensors does not exist/],
  ];
  for (const [workflowId, input, message] of cases) {
    const err = await t.throwsAsync(train(workflowId, input));
    t.regex((err as Error & { cause?: Error }).cause?.message ?? err!.message, message, workflowId);
    t.falsy(await openStore(store).head(runKeys(workflowId).record), `${workflowId}: no run.json`);
    t.falsy(await openStore(store).head(runKeys(workflowId).latest), `${workflowId}: no checkpoint`);
  }
});

test('lrMultipliers: 0 leaves a layer exactly as it was, 2 doubles its first update; an unknown layer is refused naming the nearest', async (t) => {
  const config = modelConfig('alexnet-32', { classes: 10 });
  const { images, labels } = makeBatch(4, 3 * 32 * 32, 10);
  // One step from zero momentum: the momentum buffer holds the update itself,
  // v = -lr * (wd * w + grad), so a factor of 2 on lr doubles it exactly.
  const run = async (lrMultipliers?: Record<string, number>) => {
    const net = new Network(config, { seed: 7 });
    const conv2 = Float32Array.from(net.weight('conv2.weight'));
    await net.step(images, labels, { lr: 0.01, ...(lrMultipliers ? { lrMultipliers } : {}) });
    return { conv2Moved: net.weight('conv2.weight').some((v, i) => v !== conv2[i]), conv2Momentum: Float32Array.from(net.momentum('conv2.weight')), fc8Update: Float32Array.from(net.momentum('fc8.weight')) };
  };
  const plain = await run();
  const scaled = await run({ conv2: 0, fc8: 2 });
  t.false(scaled.conv2Moved, 'conv2 frozen: its weights exactly as they were');
  t.true(scaled.conv2Momentum.every((v) => v === 0), 'and its momentum untouched');
  t.true(plain.conv2Moved, 'conv2 moves without the multiplier');
  t.true(plain.fc8Update.some((v) => v !== 0));
  t.true(plain.fc8Update.every((v, i) => scaled.fc8Update[i] === 2 * v), 'fc8\'s update exactly doubled');
  const net = new Network(config, { seed: 7 });
  await t.throwsAsync(async () => net.step(images, labels, { lr: 0.01, lrMultipliers: { fc9: 2 } }), { name: 'ArgumentError', message: /Unknown layer "fc9" in lrMultipliers; did you mean "fc8"\?/ });
  await t.throwsAsync(async () => net.step(images, labels, { lr: 0.01, lrMultipliers: { fc8: -1 } }), { message: /lrMultipliers\.fc8/ });
});
