// Batch inference: ClassifyImages end to end on a trained run through the dev server (a
// folder of real Fashion-MNIST JPEGs at two depths plus bad files, several shards two at a
// time): every listed image exactly once, bad files skipped with their reasons, the same
// predictions as classifyImages in this process; shards that fail after writing their
// part; bad input; `alexnet classify-batch`; the official CLI on an s3:// source; and a
// job continued as new on a server that suggests it early.
import test from 'ava';
import { activityInfo } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import { WorkflowFailedError } from '@temporalio/client';
import { execFile } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { promisify } from 'util';

import * as activities from '../activities';
import { classifyImages } from '../activities/classify';
import type { PartLine } from '../activities/classify-shard';
import { isImageKey } from '../activities/datasets';
import { loadInferenceModel } from '../activities/model';
import { compareKeys, getJson, openStore } from '../activities/store';
import type { ClassifyImagesInput, ClassifyImagesResult, ClassifyProgress, ShardClassification } from '../common/contract';
import { predictionKeys, runKeys } from '../common/store-layout';
import { binaryPath, startTemporal, TemporalService } from '../infra/services';
import { startInProcessWorker } from '../scripts/in-process-worker';
import { CLI } from './helpers';
import { startTrainingFixture, TrainingFixture } from './temporal-helpers';

const QUEUE = 'classify-test';
const RUN = 'classify-run';
const BUCKET = 'classify-src';
const GOOD = 40;            // real test JPEGs in the source
const BAD = 4;              // empty, truncated, text named .jpg, decompression bomb
const SHARD = 6;            // 44 listed: 8 shards, the last of 2
let fixture: TrainingFixture;
let temporal: TemporalService;
let client: Client;
let store: string;
let source: string;         // the folder of images
let listed: string[];       // what the listing must hold, key order
let reference: ClassifyImagesResult;

// A JPEG header declaring 60000x60000 pixels: refused before any decoding.
function bombJpeg(): Buffer {
  const sof = [0xff, 0xc0, 0x00, 0x11, 0x08, 0xea, 0x60, 0xea, 0x60, 0x03, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1];
  return Buffer.from([0xff, 0xd8, ...sof, 0xff, 0xd9]);
}

test.before(async () => {
  fixture = await startTrainingFixture('alexnet-classify-', QUEUE, { images: 200, minio: BUCKET });
  ({ temporal, client, store } = fixture);
  await client.workflow.execute('TrainAlexNet', {
    taskQueue: QUEUE, workflowId: RUN,
    args: [{ store, datasetName: 'fashion', model: 'alexnet-32', epochs: 1, batchSize: 16, checkpointEvery: 10, lrPolicy: { type: 'fixed', lr: 0.01 }, seed: 3 }],
  });
  // The source: real test JPEGs at the root and three folders down, bad files, and files
  // the listing leaves out (not an image extension, hidden).
  source = path.join(fixture.dir, 'to-classify');
  const testDir = path.join(fixture.dataset, 'test');
  const jpegs = fs.readdirSync(testDir, { recursive: true }).map(String).filter((f) => f.endsWith('.jpg')).sort().slice(0, GOOD);
  jpegs.forEach((f, i) => {
    const to = i < GOOD / 2 ? path.join(source, path.basename(f)) : path.join(source, 'deep', path.dirname(f), 'more', path.basename(f));
    fs.mkdirSync(path.dirname(to), { recursive: true });
    fs.copyFileSync(path.join(testDir, f), to);
  });
  fs.mkdirSync(path.join(source, 'bad'));
  fs.writeFileSync(path.join(source, 'bad', 'empty.jpg'), '');
  fs.writeFileSync(path.join(source, 'bad', 'truncated.jpg'), fs.readFileSync(path.join(testDir, jpegs[0])).subarray(0, 100));
  fs.writeFileSync(path.join(source, 'bad', 'notes.jpg'), 'these are notes, not a picture\n');
  fs.writeFileSync(path.join(source, 'bomb.jpg'), bombJpeg());
  fs.writeFileSync(path.join(source, 'readme.txt'), 'not listed\n');
  fs.writeFileSync(path.join(source, '.hidden.jpg'), 'not listed\n');
  listed = (fs.readdirSync(source, { recursive: true }) as string[]).map((f) => f.split(path.sep).join('/'))
    .filter((k) => isImageKey(k) && !k.split('/').some((s) => s.startsWith('.'))).sort(compareKeys);
});

test.after.always(async () => {
  await fixture?.stop();
});

// Every line of every part, in part order.
async function partLines(result: ClassifyImagesResult): Promise<PartLine[]> {
  const s = openStore(store);
  const lines: PartLine[] = [];
  for (let i = 0; i < result.parts; i++) {
    const text = (await s.get(predictionKeys(result.output).part(i))).toString('utf8');
    lines.push(...text.split('\n').filter((l) => l).map((l) => JSON.parse(l) as PartLine));
  }
  return lines;
}

// The largest probability difference between two sets of lines for the same keys, and the
// images whose answers disagree: a different error, an error against a prediction, or a
// different top-1 class where the two classes' probabilities are further apart than
// `tie` (batches of other sizes round differently, about 1e-8 here, so a closer pair may
// come out in either order and still be the same prediction within tolerance).
function compareLines(a: PartLine[], b: PartLine[], tie = 1e-5): { worst: number; differ: number; differing: string } {
  const byKey = new Map(b.map((l) => [l.key, l]));
  let worst = 0;
  const disagree: string[] = [];
  for (const x of a) {
    const y = byKey.get(x.key);
    const show = () => `${x.key}: ${JSON.stringify('top' in x ? x.top.slice(0, 2) : x.error)} against ${JSON.stringify(y && ('top' in y ? y.top.slice(0, 2) : y.error))}`;
    if (!y || ('top' in x) !== ('top' in y)) { disagree.push(show()); continue; }
    if (!('top' in x) || !('top' in y)) { if ('error' in x && 'error' in y && x.error !== y.error) disagree.push(show()); continue; }
    const yp = new Map(y.top.map((p) => [p.class, p.probability]));
    const xp = new Map(x.top.map((p) => [p.class, p.probability]));
    const [cx, cy] = [x.top[0].class, y.top[0].class];
    if (cx !== cy && !((yp.get(cy)! - (yp.get(cx) ?? 0) <= tie) && (xp.get(cx)! - (xp.get(cy) ?? 0) <= tie))) disagree.push(show());
    for (const p of x.top) worst = Math.max(worst, Math.abs(p.probability - (yp.get(p.class) ?? Infinity)));
  }
  return { worst, differ: disagree.length, differing: disagree.join('\n') };
}

const baseInput = (): ClassifyImagesInput => ({ store, checkpoint: { run: RUN }, source, topK: 10, crops: 1, shardSize: SHARD, maxParallel: 2 });

test.serial('ClassifyImages: every listed image once, bad files skipped with reasons, the predictions classifyImages gives in-process', async (t) => {
  const handle = await client.workflow.start('ClassifyImages', { taskQueue: QUEUE, workflowId: 'classify-main', args: [baseInput()] });
  const result = reference = await handle.result() as ClassifyImagesResult;
  t.is(result.listed, GOOD + BAD);
  t.is(result.images, GOOD);
  t.is(result.skipped, BAD);
  t.is(result.parts, Math.ceil((GOOD + BAD) / SHARD));
  t.is(result.output, runKeys(RUN).predictions('classify-main'), 'the default output: runs/<run>/predictions/<workflowId>/');
  t.deepEqual(result.skippedByReason, { 'empty file': 1, 'corrupt or truncated JPEG': 1, 'not an image': 1, 'too many pixels': 1 });
  t.deepEqual(result.skippedFiles.map((f) => f.key).sort(compareKeys), ['bad/empty.jpg', 'bad/notes.jpg', 'bad/truncated.jpg', 'bomb.jpg']);
  t.regex(result.skippedFiles.find((f) => f.key === 'bomb.jpg')!.reason, /decompression bomb/);
  const s = openStore(store);
  t.deepEqual(await getJson<ClassifyImagesResult>(s, result.summaryKey), result, 'summary.json is the result');
  t.falsy(await s.head(runKeys(RUN).hold('classify-main')), 'the checkpoint\'s hold is released');
  const progress = await handle.query<ClassifyProgress>('progress');
  t.like(progress, { phase: 'done', shardsDone: result.parts, shardsTotal: result.parts, listed: GOOD + BAD, imagesDone: GOOD, skipped: BAD });

  const lines = await partLines(result);
  t.deepEqual(lines.map((l) => l.key), listed, 'every listed image exactly once, in key order');
  // The reference: classifyImages on the same files in this process.
  const model = await loadInferenceModel({ store, checkpoint: result.checkpoint });
  const answers = await classifyImages(model, listed.map((k) => ({ image: k, data: fs.readFileSync(path.join(source, k)) })), { topK: 10, crops: 1 });
  const inProcess: PartLine[] = answers.map((a) => ('top' in a ? { key: a.image, top: a.top } : { key: a.image, error: a.error }));
  const { worst, differ, differing } = compareLines(lines, inProcess);
  t.is(differ, 0, `the same top-1 class (and the same reason for skipped files) for every image; these differ:\n${differing}`);
  t.true(worst <= 1e-5, `probabilities within 1e-5 (max ${worst})`);
  t.log(`${result.images} images classified, ${result.skipped} skipped, ${result.parts} shards 2 at a time: ${result.imagesPerSecond.toFixed(1)} images/s over ${result.seconds.toFixed(2)} s; max |dp| against in-process ${worst.toExponential(2)}`);
});

test.serial('ClassifyImages: shards that fail after writing their part, over two workers, still give each image exactly once', async (t) => {
  const queue = 'classify-flaky';
  const seen: { shard: number; attempt: number; reused: boolean }[] = [];
  // Each even shard's first attempt dies before classifying, each odd one's after its
  // part and report are written (as a worker lost just before reporting completion).
  const flaky = async (input: Parameters<typeof activities.classifyShard>[0]): Promise<ShardClassification> => {
    const attempt = activityInfo().attempt;
    if (attempt === 1 && input.shard % 2 === 0) throw new Error('lost before classifying');
    const r = await activities.classifyShard(input);
    seen.push({ shard: input.shard, attempt, reused: r.reused });
    if (attempt === 1) throw new Error('lost after writing the part');
    return r;
  };
  const workers = await Promise.all([0, 1].map(() => startInProcessWorker(temporal.address, queue, { classifyShard: flaky })));
  try {
    const result = await client.workflow.execute('ClassifyImages', { taskQueue: queue, workflowId: 'classify-flaky', args: [baseInput()] }) as ClassifyImagesResult;
    t.like(result, { listed: GOOD + BAD, images: GOOD, skipped: BAD, parts: reference.parts });
    const lines = await partLines(result);
    t.deepEqual(lines.map((l) => l.key), listed, 'every listed image exactly once');
    t.deepEqual(lines, await partLines(reference), 'the same lines as without failures');
    const history = await client.workflow.getHandle('classify-flaky').fetchHistory();
    const attempts = history.events!.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'classifyShard').length;
    t.is(attempts, reference.parts, 'one classifyShard activity per shard');
    const second = seen.filter((s) => s.attempt === 2);
    t.is(second.length, reference.parts, 'every shard completed on its second attempt');
    t.true(second.every((s) => s.reused === (s.shard % 2 === 1)), 'a part written before the failure is reused, the others classified');
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
  }
});

test.serial('ClassifyImages: bad input fails at once, naming the field', async (t) => {
  const cases: [string, Partial<Record<keyof ClassifyImagesInput, unknown>>, RegExp][] = [
    ['crops', { crops: 3 }, /for crops but received 3/],
    ['shard-size', { shardSize: 0 }, /for shardSize but received 0/],
    ['top', { topK: 1.5 }, /for topK but received 1\.5/],
    ['parallel', { maxParallel: 'many' }, /for maxParallel but received "many"/],
    ['device', { device: 'tpu' }, /for device but received "tpu"/],
    ['source', { source: 'http://example.com/images/' }, /for source but received "http:/],
    ['output', { output: '../elsewhere/' }, /for output but received "\.\.\/elsewhere\/"/],
    ['checkpoint', { checkpoint: { runs: RUN } }, /for checkpoint but received/],
    ['store', { store: '' }, /for store but received ""/],
  ];
  for (const [id, patch, message] of cases) {
    const err = await t.throwsAsync(client.workflow.execute('ClassifyImages', {
      taskQueue: QUEUE, workflowId: `classify-bad-${id}`, args: [{ ...baseInput(), ...patch } as ClassifyImagesInput],
    }), { instanceOf: WorkflowFailedError });
    t.regex(err!.cause!.message, message, id);
  }
  const missing = await t.throwsAsync(client.workflow.execute('ClassifyImages', {
    taskQueue: QUEUE, workflowId: 'classify-no-run', args: [{ ...baseInput(), checkpoint: { run: 'never-trained' } }],
  }), { instanceOf: WorkflowFailedError });
  t.regex(missing!.cause!.message, /run 'never-trained' has no checkpoint/);
  const empty = path.join(fixture.dir, 'no-images');
  fs.mkdirSync(empty, { recursive: true });
  fs.writeFileSync(path.join(empty, 'readme.txt'), 'nothing to classify\n');
  const none = await t.throwsAsync(client.workflow.execute('ClassifyImages', {
    taskQueue: QUEUE, workflowId: 'classify-no-images', args: [{ ...baseInput(), source: empty }],
  }), { instanceOf: WorkflowFailedError });
  t.regex(none!.cause!.message, /no images under/);
});

test.serial('alexnet classify-batch: follows the job and prints the summary as the last stdout line', async (t) => {
  const env = { ...process.env, TEMPORAL_ADDRESS: temporal.address };
  const { stdout } = await promisify(execFile)(process.execPath, [CLI, 'classify-batch', '--source', source, '--store', store, '--run', RUN,
    '--output', 'predictions/cli/', '--top', '3', '--shard-size', '20', '--parallel', '2', '--id', 'classify-cli', '--task-queue', QUEUE], { env, encoding: 'utf8' });
  const last = JSON.parse(stdout.trim().split('\n').pop()!) as ClassifyImagesResult & { workflowId: string };
  t.like(last, { workflowId: 'classify-cli', listed: GOOD + BAD, images: GOOD, skipped: BAD, parts: 3, output: 'predictions/cli/', summaryKey: 'predictions/cli/summary.json', topK: 3 });
  const lines = await partLines(last);
  t.deepEqual(lines.map((l) => l.key), listed);
  t.true(lines.every((l) => !('top' in l) || l.top.length === 3));
  const { differ, differing } = compareLines(lines, await partLines(reference));
  t.is(differ, 0, `the same top-1 as the workflow run with other shards; these differ:\n${differing}`);
  const usage = await t.throwsAsync(promisify(execFile)(process.execPath, [CLI, 'classify-batch', '--source', source, '--store', store], { env, encoding: 'utf8' })) as Error & { code: number; stderr: string };
  t.is(usage.code, 2);
  t.regex(usage.stderr, /give one of --run RUN_ID or --checkpoint KEY/);
});

test.serial('temporal workflow start (the official CLI) classifies an s3:// source', async (t) => {
  const bucket = openStore(`s3://${BUCKET}/images`);
  for (const k of [...listed, 'readme.txt']) await bucket.put(k, fs.readFileSync(path.join(source, k)));
  const input: ClassifyImagesInput = { store, checkpoint: reference.checkpoint, source: `s3://${BUCKET}/images/`, shardSize: 16, maxParallel: 2, topK: 10 };
  await promisify(execFile)(binaryPath('temporal'), ['workflow', 'start', '--type', 'ClassifyImages', '--task-queue', QUEUE,
    '--workflow-id', 'classify-official', '--input', JSON.stringify(input), '--address', temporal.address]);
  const result = await client.workflow.getHandle('classify-official').result() as ClassifyImagesResult;
  t.like(result, { listed: GOOD + BAD, images: GOOD, skipped: BAD, parts: 3, checkpoint: reference.checkpoint, source: input.source });
  const lines = await partLines(result);
  t.deepEqual(lines.map((l) => l.key), listed, 'keys relative to the source prefix, each once');
  const { worst, differ, differing } = compareLines(lines, await partLines(reference));
  t.is(differ, 0, differing);
  t.true(worst <= 1e-5, `max |dp| ${worst}`);
});

test.serial('ClassifyImages continued as new (a server that suggests it after 20 events) still gives each image exactly once', async (t) => {
  const low = await startTemporal({ dir: path.join(fixture.dir, 'temporal-low'), dynamicConfig: { 'limit.historyCount.suggestContinueAsNew': 20 } });
  const worker = await startInProcessWorker(low.address, QUEUE).catch(async (e) => { await low.stop(); throw e; });
  try {
    const handle = await worker.client.workflow.start('ClassifyImages', { taskQueue: QUEUE, workflowId: 'classify-chain', args: [{ ...baseInput(), shardSize: 4 }] });
    const result = await handle.result() as ClassifyImagesResult;
    t.like(result, { listed: GOOD + BAD, images: GOOD, skipped: BAD, parts: Math.ceil((GOOD + BAD) / 4) });
    const lines = await partLines(result);
    t.deepEqual(lines.map((l) => l.key), listed);
    const { differ, differing } = compareLines(lines, await partLines(reference));
    t.is(differ, 0, differing);
    const first = await worker.client.workflow.getHandle('classify-chain', handle.firstExecutionRunId).fetchHistory();
    const events = first.events ?? [];
    t.truthy(events[events.length - 1]?.workflowExecutionContinuedAsNewEventAttributes, 'the first run continued as new');
  } finally {
    await worker.stop();
    await low.stop();
  }
});
