// TensorBoard event files: real TensorBoard (pip's tensorboard, its EventAccumulator, in
// scripts/tensorboard_events.py) reads what TrainAlexNet wrote, on a local store and on
// MinIO through TensorBoard's own S3 support (boto3), and every point equals the run's
// metrics.jsonl; the command `alexnet tensorboard` prints starts a TensorBoard server that
// serves them; an epoch interrupted three times (a cancel that checkpoints at an arbitrary
// batch, a failure between an event file and its checkpoint, a crash between checkpoints)
// and resumed writes exactly the points of an uninterrupted one; a failed event write is a
// warning; a zombie attempt writes nothing.
import { ChildProcess, execFile, spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { promisify } from 'util';
import test, { ExecutionContext } from 'ava';
import { MockActivityEnvironment } from '@temporalio/testing';

import * as activities from '../activities';
import { crc32c, maskedCrc32c } from '../activities/crc32c';
import { openStore } from '../activities/store';
import { EpochEvents, TENSORBOARD_TAGS } from '../activities/tensorboard';
import type { EpochResult, TrainEpochInput, ValidationResult } from '../common/contract';
import { datasetKeys, runKeys } from '../common/store-layout';
import { PYTHON, REPO_ROOT } from '../scripts/python';
import { CLI, tmpDir } from './helpers';
import { startTrainingFixture, TrainingFixture } from './temporal-helpers';

const QUEUE = 'tensorboard-test';
const BUCKET = 'alexnet-tensorboard-test';
const TENSORBOARD_LIB = path.join(REPO_ROOT, '.cache', 'tensorboard');  // scripts/install-python-deps.sh
const BATCH_SIZE = 16;
const CHECKPOINT_EVERY = 5;
let fixture: TrainingFixture;

test.before(async () => {
  if (!fs.existsSync(path.join(TENSORBOARD_LIB, 'tensorboard'))) {
    throw new Error(`no tensorboard in ${TENSORBOARD_LIB}: run scripts/install-python-deps.sh (npm test and scripts/setup.sh do)`);
  }
  fixture = await startTrainingFixture('alexnet-tensorboard-', QUEUE, { minio: BUCKET, images: 320 });
});

test.after.always(async () => {
  await fixture?.stop();
});

// What scripts/tensorboard_events.py prints: EventAccumulator's scalars [step, value,
// wall_time] and images per tag, and the event files in the order TensorBoard reads them.
interface TensorBoardRead {
  scalars: Record<string, [number, number, number][]>;
  images: Record<string, { step: number; width: number; height: number; bytes: number; png: boolean }[]>;
  files: string[];
}

// Asynchronous, so the in-process worker keeps serving meanwhile.
async function readWithTensorBoard(logdir: string, env: NodeJS.ProcessEnv = process.env): Promise<TensorBoardRead> {
  const { stdout } = await promisify(execFile)(PYTHON, [path.join(REPO_ROOT, 'scripts', 'tensorboard_events.py'), logdir],
    { env: { ...env, PYTHONPATH: TENSORBOARD_LIB }, encoding: 'utf8', maxBuffer: 64 << 20 });
  return JSON.parse(stdout) as TensorBoardRead;
}

async function alexnetCli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [CLI, ...args], { encoding: 'utf8' });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof err.code === 'number' ? err.code : 1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

// The printed command: its environment assignments and its logdir.
function parseCommand(t: ExecutionContext, line: string): { env: Record<string, string>; logdir: string } {
  const m = /^((?:[A-Z_0-9]+=\S+ )*)tensorboard --logdir (\S+)$/.exec(line.trim());
  if (!m) throw new Error(`not a tensorboard command: ${line}`);
  t.log(`alexnet tensorboard printed: ${line.trim()}`);
  const env = Object.fromEntries(m[1].trim().split(/\s+/).filter(Boolean).map((a) => [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)]));
  return { env, logdir: m[2] };
}

interface MetricsLine { kind: string; epoch: number; lr: number; train: EpochResult; validation: ValidationResult; warnings: string[] }

async function readMetrics(store: string, runId: string): Promise<MetricsLine[]> {
  const text = (await openStore(store).get(runKeys(runId).metrics)).toString();
  return text.trim().split('\n').map((l) => JSON.parse(l) as MetricsLine);
}

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);
const steps = (points: [number, number, number][] = []) => points.map(([step]) => step);
// Where an epoch's checkpoints are: every CHECKPOINT_EVERY batches, and at its end.
const checkpointCursors = (batches: number) => [...range(1, Math.ceil(batches / CHECKPOINT_EVERY)).map((i) => i * CHECKPOINT_EVERY), batches];
const pad = (n: number, width: number) => String(n).padStart(width, '0');

// Everything TensorBoard read against the run's metrics.jsonl, epoch by epoch.
function checkAgainstMetrics(t: ExecutionContext, read: TensorBoardRead, metrics: MetricsLine[]): void {
  const tags = TENSORBOARD_TAGS;
  const B = metrics[0].train.batches;
  const epochs = metrics.length;
  t.deepEqual(Object.keys(read.scalars).sort(),
    [tags.checkpointSeconds, tags.trainImagesPerSecond, tags.trainLoss, tags.trainLr, tags.valTop1Error, tags.valTop5Error].sort());
  for (const [tag, points] of Object.entries(read.scalars)) {
    t.true(points.every(([step], i) => i === 0 || step > points[i - 1][0]), `${tag}: steps strictly increasing, no duplicates`);
  }
  t.deepEqual(steps(read.scalars[tags.trainLoss]), range(0, epochs * B), 'a train/loss point per batch, step = epoch * batches + batch');
  t.deepEqual(steps(read.scalars[tags.trainImagesPerSecond]), range(0, epochs * B));
  t.true(read.scalars[tags.trainImagesPerSecond].every(([, v]) => v > 0 && Number.isFinite(v)));
  for (const m of metrics) {
    const e = m.epoch;
    const inEpoch = (points: [number, number, number][]) => points.filter(([step]) => step >= e * B && step < (e + 1) * B).map(([, v]) => v);
    const losses = inEpoch(read.scalars[tags.trainLoss]);
    const mean = losses.reduce((a, b) => a + b, 0) / losses.length;
    t.true(Math.abs(mean - m.train.meanLoss) <= 1e-6 * m.train.meanLoss, `epoch ${e}: mean of train/loss ${mean} is metrics' meanLoss ${m.train.meanLoss} (float32 points)`);
    t.true(inEpoch(read.scalars[tags.trainLr]).every((v) => v === Math.fround(m.lr)), `epoch ${e}: train/lr is the epoch's LR ${m.lr}`);
    t.deepEqual(inEpoch(read.scalars[tags.valTop1Error]), [Math.fround(m.validation.top1Error)], `epoch ${e}: val/top1_error is metrics' validation`);
    t.deepEqual(inEpoch(read.scalars[tags.valTop5Error]), [Math.fround(m.validation.top5Error)]);
    t.true(m.warnings.every((w) => !/TensorBoard/.test(w)), `epoch ${e}: no TensorBoard warning: ${m.warnings.join('; ')}`);
  }
  t.deepEqual(steps(read.scalars[tags.valTop1Error]), metrics.map((m) => m.epoch * B + B - 1), 'validation at each epoch\'s last step');
  t.deepEqual(steps(read.scalars[tags.checkpointSeconds]), metrics.flatMap((m) => checkpointCursors(B).map((c) => m.epoch * B + c - 1)),
    'checkpoint/seconds at the last step each checkpoint holds');
  t.true(read.scalars[tags.checkpointSeconds].every(([, v]) => v >= 0 && v < 60));
  // alexnet-32's conv1: 32 kernels of 5x5 in a 6x6 grid of 30-pixel tiles with 2-pixel gaps.
  t.deepEqual(read.images[tags.kernels('conv1')].map(({ step, width, height, png }) => ({ step, width, height, png })),
    metrics.map((m) => ({ step: m.epoch * B + B - 1, width: 194, height: 194, png: true })), 'conv1\'s kernels as a PNG at each epoch\'s end');
  // The files, in the order TensorBoard reads them: each epoch's ranges between checkpoints
  // by first batch, each checkpoint before the range that starts at it, the validation last.
  t.deepEqual(read.files, metrics.flatMap((m) => {
    const e = pad(m.epoch, 5);
    const cursors = checkpointCursors(B);
    return [
      `events.out.tfevents.${e}-0000000.train.alexnet`,
      ...cursors.flatMap((c) => [`events.out.tfevents.${e}-${pad(c, 7)}.checkpoint.alexnet`, ...(c < B ? [`events.out.tfevents.${e}-${pad(c, 7)}.train.alexnet`] : [])]),
      `events.out.tfevents.${e}-val.alexnet`,
    ];
  }));
}

const trainInput = (store: string) => ({
  store, datasetName: 'fashion', model: 'alexnet-32', epochs: 2, batchSize: BATCH_SIZE, checkpointEvery: CHECKPOINT_EVERY,
  lrPolicy: { type: 'step', everyEpochs: 1, initialLr: 0.01, factor: 0.5 }, seed: 3,
});

test('crc32c: the standard check values; masked as TFRecord masks it', (t) => {
  t.is(crc32c(Buffer.from('123456789')), 0xe3069283);
  t.is(crc32c(Buffer.alloc(32)), 0x8a9136aa);        // RFC 3720's 32 bytes of zeros
  t.is(crc32c(Buffer.alloc(32, 0xff)), 0x62a8ab43);  // and of ones
  t.is(crc32c(Buffer.alloc(0)), 0);
  t.is(maskedCrc32c(Buffer.from('123456789')), 0xc78ab0e5);  // TensorBoard's own masked_crc32c
});

test.serial('TrainAlexNet on a local store: TensorBoard reads every point of metrics.jsonl, in step order, with conv1\'s kernels each epoch', async (t) => {
  const runId = 'tb-local';
  await fixture.client.workflow.execute('TrainAlexNet', { taskQueue: QUEUE, workflowId: runId, args: [trainInput(fixture.store)] });
  const printed = await alexnetCli('tensorboard', '--store', fixture.store, '--run', runId);
  t.is(printed.code, 0, printed.stderr);
  const { env, logdir } = parseCommand(t, printed.stdout);
  t.deepEqual(env, {}, 'a local store needs no environment');
  t.is(logdir, path.join(fixture.store, 'runs', runId, 'tensorboard'));
  const metrics = await readMetrics(fixture.store, runId);
  t.deepEqual(metrics.map((m) => [m.epoch, m.lr]), [[0, 0.01], [1, 0.005]]);
  checkAgainstMetrics(t, await readWithTensorBoard(logdir), metrics);

  const unknown = await alexnetCli('tensorboard', '--store', fixture.store, '--run', 'no-such-run');
  t.is(unknown.code, 1);
  t.regex(unknown.stderr, /RunNotFound: .* has no run 'no-such-run' \(no runs\/no-such-run\/latest\.json\): check --run and --store/);
  t.is((await alexnetCli('tensorboard', '--store', fixture.store)).code, 2, 'missing --run: a usage error');
});

// A TensorBoard server as the printed command starts it (with a `tensorboard` on PATH as
// pip installs it, and --port 0 --host 127.0.0.1 added), its URL once it says it.
async function startTensorBoard(t: ExecutionContext, line: string, env: NodeJS.ProcessEnv): Promise<string> {
  const bin = tmpDir('alexnet-tensorboard-bin-', t);
  fs.writeFileSync(path.join(bin, 'tensorboard'), `#!/bin/sh\nexec ${PYTHON} -m tensorboard.main "$@"\n`, { mode: 0o755 });
  const server: ChildProcess = spawn('bash', ['-c', `${line.trim()} --port 0 --host 127.0.0.1`], {
    env: { ...env, PATH: `${bin}:${env.PATH ?? ''}`, PYTHONPATH: TENSORBOARD_LIB }, detached: true, stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => {
    if (server.exitCode === null) process.kill(-server.pid!, 'SIGTERM');
  });
  let output = '';
  server.stdout!.on('data', (d: Buffer) => void (output += d.toString()));
  server.stderr!.on('data', (d: Buffer) => void (output += d.toString()));
  for (let i = 0; i < 600; i++) {
    const url = /TensorBoard [\d.]+ at (http:\/\/127\.0\.0\.1:\d+)\//.exec(output)?.[1];
    if (url) return url;
    if (server.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`TensorBoard did not start:\n${output}`);
}

test.serial('TrainAlexNet on MinIO: TensorBoard reads the event files through its S3 support, and the printed command serves them', async (t) => {
  const s3 = fixture.s3!;
  // The prepared dataset, copied into the bucket.
  const local = openStore(fixture.store), remote = openStore(s3.uri);
  for await (const o of local.list(`${datasetKeys('fashion').root}/`)) await remote.put(o.key, await local.get(o.key));
  const runId = 'tb-minio';
  await fixture.client.workflow.execute('TrainAlexNet', { taskQueue: QUEUE, workflowId: runId, args: [trainInput(s3.uri)] });
  const printed = await alexnetCli('tensorboard', '--store', s3.uri, '--run', runId);
  t.is(printed.code, 0, printed.stderr);
  const { env, logdir } = parseCommand(t, printed.stdout);
  t.deepEqual(env, { S3_ENDPOINT: s3.minio.endpoint }, 'the store\'s endpoint, for boto3');
  t.is(logdir, `s3://${BUCKET}/runs/${runId}/tensorboard`);
  t.false(printed.stdout.includes(s3.minio.secretAccessKey) || printed.stderr.includes(s3.minio.secretAccessKey), 'the secret key is never printed');
  // The endpoint comes from the printed command alone; the keys from the AWS chain.
  const shellEnv = { ...process.env, AWS_ENDPOINT_URL: undefined };
  const metrics = await readMetrics(s3.uri, runId);
  checkAgainstMetrics(t, await readWithTensorBoard(logdir, { ...shellEnv, ...env }), metrics);

  const url = await startTensorBoard(t, printed.stdout, shellEnv);
  const B = metrics[0].train.batches;
  let served: [number, number, number][] = [];  // [wall_time, step, value]
  for (let i = 0; i < 600 && served.length < metrics.length; i++) {
    const res = await fetch(`${url}/data/plugin/scalars/scalars?run=.&tag=${encodeURIComponent(TENSORBOARD_TAGS.valTop1Error)}`);
    served = res.ok ? await res.json() as [number, number, number][] : [];
    if (served.length < metrics.length) await new Promise((r) => setTimeout(r, 100));
  }
  t.deepEqual(served.map(([, step, value]) => [step, value]), metrics.map((m) => [m.epoch * B + B - 1, Math.fround(m.validation.top1Error)]),
    'the TensorBoard server the printed command started serves the run\'s val/top1_error from MinIO');
});

const epochInput = (runId: string): TrainEpochInput => ({
  runId, store: fixture.store, dataset: 'fashion', trainSplit: 'train', epoch: 0, lr: 0.01, batchSize: BATCH_SIZE, seed: 5,
  crop: 32, pcaSigma: 0.1, checkpointEvery: CHECKPOINT_EVERY, stallBatches: 1000,
});

// (tag, step, value) of the points that do not measure time, and the steps of those that do.
function pointSet(read: TensorBoardRead): { values: string[]; timed: string[]; images: string[] } {
  const timedTags: string[] = [TENSORBOARD_TAGS.trainImagesPerSecond, TENSORBOARD_TAGS.checkpointSeconds];
  const all = Object.entries(read.scalars).flatMap(([tag, points]) => points.map(([step, value]) => ({ tag, step, value })));
  return {
    values: all.filter((p) => !timedTags.includes(p.tag)).map((p) => `${p.tag}@${p.step}=${p.value}`).sort(),
    timed: all.filter((p) => p.tag === TENSORBOARD_TAGS.trainImagesPerSecond).map((p) => `${p.tag}@${p.step}`).sort(),
    images: Object.entries(read.images).flatMap(([tag, images]) => images.map((i) => `${tag}@${i.step}:${i.width}x${i.height},${i.bytes} bytes`)),
  };
}

test.serial('trainEpoch: an epoch cancelled at an arbitrary batch, failed between its events and a checkpoint, killed between checkpoints, then resumed writes exactly the points of an uninterrupted one', async (t) => {
  for (const runId of ['tb-straight', 'tb-interrupted']) await activities.initRun({ runId, store: fixture.store, model: 'alexnet-32', classes: 10, seed: 5 });
  const straight = await new MockActivityEnvironment({ attempt: 1 }).run(activities.trainEpoch, epochInput('tb-straight')) as EpochResult;
  const B = straight.batches;
  const s = openStore(fixture.store);
  const latest = async () => (JSON.parse((await s.get(runKeys('tb-interrupted').latest)).toString()) as { batch: number }).batch;

  // Attempt 1: cancelled after batch 7, so it checkpoints where no uninterrupted run does.
  const cancelled = new MockActivityEnvironment({ attempt: 1 });
  cancelled.on('heartbeat', (d: { batch: number }) => {
    if (d.batch === 7) cancelled.cancel();
  });
  await t.throwsAsync(cancelled.run(activities.trainEpoch, epochInput('tb-interrupted')));
  t.is(await latest(), 7, 'the cancel checkpointed at batch 7, between the regular checkpoints');
  // Attempt 2: its checkpoint at 15 fails (a folder stands where the file goes) after the
  // events of batches 10-14 were written: they must not come twice when they are retrained.
  fs.mkdirSync(path.join(fixture.store, runKeys('tb-interrupted').checkpoint(0, 15, 2)), { recursive: true });
  await t.throwsAsync(new MockActivityEnvironment({ attempt: 2 }).run(activities.trainEpoch, epochInput('tb-interrupted')));
  t.is(await latest(), 10);
  t.truthy(await s.head(runKeys('tb-interrupted').trainEvents(0, 10)), 'the range 10-14 was written before the checkpoint failed');
  // Attempt 3: dies after batch 12 (as a killed worker: no checkpoint, its buffered points gone).
  const killed = new MockActivityEnvironment({ attempt: 3 });
  killed.on('heartbeat', (d: { batch: number }) => {
    if (d.batch === 12) throw new Error('worker lost');
  });
  await t.throwsAsync(killed.run(activities.trainEpoch, epochInput('tb-interrupted')), { message: 'worker lost' });
  t.is(await latest(), 10);
  // Attempt 4: resumes at 10 and ends the epoch.
  const resumed = await new MockActivityEnvironment({ attempt: 4 }).run(activities.trainEpoch, epochInput('tb-interrupted')) as EpochResult;
  t.is(resumed.batches, B);
  t.true(B > 15, `${B} batches: every interruption above is inside the epoch`);

  const logdir = (runId: string) => path.join(fixture.store, 'runs', runId, 'tensorboard');
  const [a, b] = [await readWithTensorBoard(logdir('tb-straight')), await readWithTensorBoard(logdir('tb-interrupted'))];
  const [sa, sb] = [pointSet(a), pointSet(b)];
  t.is(sa.values.filter((p) => p.startsWith(`${TENSORBOARD_TAGS.trainLoss}@`)).length, B);
  t.deepEqual(sb.values, sa.values, 'train/loss and train/lr: the same (tag, step, value) points, none twice, none missing');
  t.deepEqual(sb.timed, sa.timed, 'train/images_per_second at the same steps');
  t.deepEqual(sb.images, sa.images, 'conv1\'s kernels: the same PNG at the epoch\'s last step');
  t.deepEqual(steps(b.scalars[TENSORBOARD_TAGS.checkpointSeconds]), [...checkpointCursors(B), 7].sort((x, y) => x - y).map((c) => c - 1),
    'checkpoint/seconds: the checkpoints that were taken (the regular ones and the cancel\'s), each once');
});

test.serial('trainEpoch: an event file that cannot be written is a warning in the epoch\'s result; training goes on', async (t) => {
  const runId = 'tb-unwritable';
  await activities.initRun({ runId, store: fixture.store, model: 'alexnet-32', classes: 10, seed: 5 });
  const blocked = path.join(fixture.store, runKeys(runId).trainEvents(0, 5));
  fs.mkdirSync(blocked, { recursive: true });  // a folder where the file goes
  const result = await new MockActivityEnvironment({ attempt: 1 }).run(activities.trainEpoch, epochInput(runId)) as EpochResult;
  t.is(result.batchesThisAttempt, result.batches, 'the whole epoch trained');
  t.deepEqual(result.warnings.filter((w) => /TensorBoard/.test(w)).map((w) => w.replace(/ \(.*\)/, ' (...)')),
    [`TensorBoard events ${runKeys(runId).trainEvents(0, 5)} not written (...); training goes on without them`]);
  fs.rmdirSync(blocked);
  const read = await readWithTensorBoard(path.join(fixture.store, 'runs', runId, 'tensorboard'));
  t.deepEqual(steps(read.scalars[TENSORBOARD_TAGS.trainLoss]), range(0, result.batches).filter((i) => i < 5 || i >= 10), 'every other range is there');
});

test('EpochEvents: a zombie attempt (a newer one started the epoch) writes nothing; one that cannot tell says so and writes nothing', async (t) => {
  const store = openStore(tmpDir('alexnet-tensorboard-zombie-', t));
  const warnings: string[] = [];
  const zombie = new EpochEvents(store, 'r', 0, 10, 0, async () => false, warnings);
  zombie.trained(0, { loss: 2.3, lr: 0.01, imagesPerSecond: 100 });
  await zombie.flush(1);
  await zombie.checkpointed(1, 0.5);
  const unsure = new EpochEvents(store, 'r', 0, 10, 0, async () => { throw new Error('store unreachable'); }, warnings);
  unsure.trained(0, { loss: 2.3, lr: 0.01, imagesPerSecond: 100 });
  await unsure.flush(1);
  const written: string[] = [];
  for await (const o of store.list('')) written.push(o.key);
  t.deepEqual(written, []);
  t.deepEqual(warnings, ['TensorBoard events of epoch 0: cannot tell whether this attempt is still the newest (store unreachable); its events are not written']);
  const newest = new EpochEvents(store, 'r', 0, 10, 0, async () => true, warnings);
  newest.trained(0, { loss: 2.3, lr: 0.01, imagesPerSecond: 100 });
  await newest.flush(1);
  t.truthy(await store.head(runKeys('r').trainEvents(0, 0)));
});
