// Evaluation: EvaluateAlexNet end to end on real Fashion-MNIST through the dev server
// (10-crop and centre crop, every image counted once across workers and retries, the
// report files), the scoring helpers, bad inputs, and scheduled evaluation.
import test from 'ava';
import { promisify } from 'util';
import { execFile } from 'child_process';
import { activityInfo } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import { WorkflowFailedError } from '@temporalio/client';

import * as activities from '../activities';
import { averagedSoftmax, classesAbove } from '../activities/scoring';
import { getJson, openStore } from '../activities/store';
import { runKeys } from '../common/store-layout';
import { binaryPath, TemporalService } from '../infra/services';
import type { EvaluateAlexNetResult, EvaluationReport } from '../common/contract';
import { startInProcessWorker } from '../scripts/in-process-worker';
import { CLI } from './helpers';
import { startTrainingFixture, TrainingFixture } from './temporal-helpers';

const QUEUE = 'evaluate-test';
const TEST_IMAGES = 250;  // 5 shards of 50 with shardSize 60: the last one short
let fixture: TrainingFixture;
let temporal: TemporalService;
let client: Client;
let store: string;
let trained: { latestCheckpoint: string; lastValidation: { top1Error: number; top5Error: number; loss: number; images: number } };

test.before(async () => {
  fixture = await startTrainingFixture('alexnet-evaluate-', QUEUE, { images: TEST_IMAGES, shardSize: 60 });
  ({ temporal, client, store } = fixture);
  trained = await client.workflow.execute('TrainAlexNet', {
    taskQueue: QUEUE, workflowId: 'eval-run',
    args: [{ store, datasetName: 'fashion', model: 'alexnet-32', epochs: 2, batchSize: 25, checkpointEvery: 5, lrPolicy: { type: 'fixed', lr: 0.01 }, seed: 3 }],
  });
});

test.after.always(async () => {
  await fixture?.stop();
});

test('averagedSoftmax: averages each group of rows\' softmax', (t) => {
  const logits = Float32Array.from([0, 0, Math.log(3), 0, 0, 0]);  // 2 rows x 3 classes, one group
  const p = averagedSoftmax(logits, 2, 3, 2);
  // softmax of row 1 is (0.2, 0.2, 0.6), of row 2 (1/3, 1/3, 1/3).
  const want = [(0.2 + 1 / 3) / 2, (0.2 + 1 / 3) / 2, (0.6 + 1 / 3) / 2];
  p.forEach((v, i) => t.true(Math.abs(v - want[i]) < 1e-7, `class ${i}: ${v} vs ${want[i]}`));
  t.is(classesAbove(p, 0, 3, 2), 0, 'class 2 is on top');
  t.is(classesAbove(p, 0, 3, 1), 2, 'a tie counts against the true class');
});

test.serial('EvaluateAlexNet: 10-crop report counts every test image once and writes JSON, Markdown and HTML', async (t) => {
  const result = await client.workflow.execute('EvaluateAlexNet', {
    taskQueue: QUEUE, workflowId: 'eval-10',
    args: [{ store, checkpoint: { run: 'eval-run' }, datasetName: 'fashion', crops: 10, maxParallel: 3 }],
  }) as EvaluateAlexNetResult;
  t.is(result.images, TEST_IMAGES);
  t.is(result.checkpointKey, trained.latestCheckpoint, 'the run\'s newest checkpoint');
  const s = openStore(store);
  const report = await getJson<EvaluationReport & { history: unknown[] }>(s, result.reportKeys.json);
  t.is(report.images, TEST_IMAGES);
  t.is(report.crops, 10);
  t.is(report.perClass.reduce((a, c) => a + c.images, 0), TEST_IMAGES, 'per-class counts add up to the split');
  t.is(report.confusion!.flat().reduce((a, b) => a + b, 0), TEST_IMAGES, 'the confusion matrix holds every image once');
  const diagonal = report.confusion!.reduce((a, row, i) => a + row[i], 0);
  t.is(diagonal, Math.round(report.top1Accuracy * TEST_IMAGES), 'the diagonal is the top-1 hits');
  t.true(report.top5Error <= report.top1Error);
  t.is(report.history.length, 2, 'the run\'s two epochs in the history');
  t.regex((await s.get(result.reportKeys.markdown)).toString(), /Top-1/);
  t.regex((await s.get(result.reportKeys.html)).toString(), /<svg/);
  t.log(`10-crop top-1 error ${report.top1Error.toFixed(3)} (centre crop during training: ${trained.lastValidation.top1Error.toFixed(3)})`);
});

test.serial('EvaluateAlexNet: the centre crop agrees with the validation TrainAlexNet ran on the same checkpoint', async (t) => {
  // TrainAlexNet validated on the val split carved out of train.
  const result = await client.workflow.execute('EvaluateAlexNet', {
    taskQueue: QUEUE, workflowId: 'eval-1',
    args: [{ store, checkpoint: trained.latestCheckpoint, datasetName: 'fashion', crops: 1, split: 'val' }],
  }) as EvaluateAlexNetResult;
  t.is(result.images, trained.lastValidation.images);
  t.is(result.top1Error, trained.lastValidation.top1Error);
  t.is(result.top5Error, trained.lastValidation.top5Error);
  const report = await getJson<EvaluationReport>(openStore(store), result.reportKeys.json);
  t.true(Math.abs(report.loss - trained.lastValidation.loss) < 1e-4, `loss ${report.loss} vs ${trained.lastValidation.loss}`);
});

test.serial('EvaluateAlexNet: shards that fail after writing their result, over two workers, are still counted once', async (t) => {
  const queue = 'evaluate-flaky';
  // Every odd shard's first attempt dies after its partial is written (as a worker lost
  // just before reporting completion would), and each even shard's first attempt before.
  const flaky = async (input: Parameters<typeof activities.evaluateShard>[0]) => {
      if (activityInfo().attempt === 1 && input.shard % 2 === 0) throw new Error('lost before evaluating');
      const r = await activities.evaluateShard(input);
      if (activityInfo().attempt === 1) throw new Error('lost after writing the partial');
      return r;
    };
  const reference = await client.workflow.execute('EvaluateAlexNet', {
    taskQueue: QUEUE, workflowId: 'eval-steady', args: [{ store, checkpoint: { run: 'eval-run' }, datasetName: 'fashion', crops: 1 }],
  }) as EvaluateAlexNetResult;
  const workers = await Promise.all([0, 1].map(() => startInProcessWorker(temporal.address, queue, { evaluateShard: flaky })));
  try {
    const result = await client.workflow.execute('EvaluateAlexNet', {
      taskQueue: queue, workflowId: 'eval-flaky',
      args: [{ store, checkpoint: { run: 'eval-run' }, datasetName: 'fashion', crops: 1, maxParallel: 5 }],
    }) as EvaluateAlexNetResult;
    t.is(result.images, TEST_IMAGES);
    t.is(result.top1Error, reference.top1Error, 'the same result as without failures');
    t.is(result.top5Error, reference.top5Error);
    const history = await client.workflow.getHandle('eval-flaky').fetchHistory();
    // The server records an activity's start once, with the attempt that completed it.
    const attempts = history.events!.filter((e) => e.activityTaskStartedEventAttributes).map((e) => e.activityTaskStartedEventAttributes!.attempt ?? 1);
    t.is(attempts.filter((a) => a === 2).length, 5, `every one of the 5 shards completed on its second attempt (attempts: ${attempts.join(',')})`);
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
  }
});

test.serial('EvaluateAlexNet: bad input fails at once, naming the field', async (t) => {
  const err = await t.throwsAsync(client.workflow.execute('EvaluateAlexNet', {
    taskQueue: QUEUE, workflowId: 'eval-bad-crops', args: [{ store, checkpoint: { run: 'eval-run' }, datasetName: 'fashion', crops: 3 }],
  }), { instanceOf: WorkflowFailedError });
  t.regex(err!.cause!.message, /for crops but received 3/);
  const missing = await t.throwsAsync(client.workflow.execute('EvaluateAlexNet', {
    taskQueue: QUEUE, workflowId: 'eval-no-run', args: [{ store, checkpoint: { run: 'never-trained' }, datasetName: 'fashion' }],
  }), { instanceOf: WorkflowFailedError });
  t.regex(missing!.cause!.message, /run 'never-trained' has no checkpoint/);
  const split = await t.throwsAsync(client.workflow.execute('EvaluateAlexNet', {
    taskQueue: QUEUE, workflowId: 'eval-no-split', args: [{ store, checkpoint: { run: 'eval-run' }, datasetName: 'fashion', split: 'holdout' }],
  }), { instanceOf: WorkflowFailedError });
  t.regex(split!.cause!.message, /has no split 'holdout': it has test, train, val/);
});

test.serial('schedule-eval --promote: a triggered schedule evaluates the checkpoint latest.json names when it runs, and promotes it', async (t) => {
  const run = promisify(execFile);
  const env = { ...process.env, TEMPORAL_ADDRESS: temporal.address };
  const cli = (...args: string[]) => run(process.execPath, [CLI, ...args], { env });
  const created = await cli('schedule-eval', '--run', 'eval-run', '--store', store, '--dataset-name', 'fashion', '--every', '1h', '--crops', '1', '--promote', '--task-queue', QUEUE);
  t.is(JSON.parse(created.stdout).scheduleId, 'eval-eval-run');
  const s = openStore(store);
  const servingKey = runKeys('eval-run').serving;
  t.falsy(await s.head(servingKey), 'nothing promoted before the schedule runs');
  // After the schedule was created, point latest.json at the run's first checkpoint:
  // the scheduled evaluation must pick that up, not what was latest at creation.
  const latestKey = runKeys('eval-run').latest;
  const saved = await s.get(latestKey);
  const first = runKeys('eval-run').checkpoint(0, 0, 0);
  await s.put(latestKey, JSON.stringify({ ...JSON.parse(saved.toString()), key: first, epoch: 0, batch: 0 }));
  try {
    const listed = await cli('schedule-eval', 'list');
    t.regex(listed.stdout, /"scheduleId":"eval-eval-run"/);
    await cli('schedule-eval', 'trigger', 'eval-eval-run');
    let report: EvaluationReport | undefined;
    for (let i = 0; i < 240 && !report; i++) {
      for await (const o of s.list(`${runKeys('eval-run').root}/reports/`)) {
        if (o.key.endsWith('/report.json')) {
          const r = await getJson<EvaluationReport>(s, o.key);
          if (r.checkpointKey === first) report = r;
        }
      }
      if (!report) await new Promise((r) => setTimeout(r, 500));
    }
    t.truthy(report, 'the scheduled evaluation wrote its report');
    t.is(report!.images, TEST_IMAGES);
    // serving.json is written last, after the report: wait for it.
    for (let i = 0; i < 60 && !(await s.head(servingKey)); i++) await new Promise((r) => setTimeout(r, 500));
    t.is((await getJson<{ checkpoint: string }>(s, servingKey)).checkpoint, first, 'the first scheduled evaluation promoted its checkpoint (none was served)');
    const described = JSON.parse((await cli('schedule-eval', 'describe', 'eval-eval-run')).stdout) as { overlap: string; recentRuns: unknown[] };
    t.is(described.overlap, 'SKIP');
    t.true(described.recentRuns.length >= 1);
  } finally {
    await s.put(latestKey, saved);
    await s.delete(servingKey);
    await cli('schedule-eval', 'delete', 'eval-eval-run');
  }
  const after = await cli('schedule-eval', 'list');
  t.notRegex(after.stdout, /eval-eval-run/);
});

test.serial('temporal schedule create (the official CLI, as the README shows) runs EvaluateAlexNet on the run\'s newest checkpoint', async (t) => {
  const run = promisify(execFile);
  const temporalCli = (...args: string[]) => run(binaryPath('temporal'), [...args, '--address', temporal.address]);
  const input = { store, checkpoint: { run: 'eval-run' }, datasetName: 'fashion', crops: 1 };
  await temporalCli('schedule', 'create', '--schedule-id', 'eval-official', '--interval', '1h', '--overlap-policy', 'Skip', '--catchup-window', '10m',
    '--workflow-id', 'eval-official-run', '--task-queue', QUEUE, '--type', 'EvaluateAlexNet', '--input', JSON.stringify(input));
  try {
    await temporalCli('schedule', 'trigger', '--schedule-id', 'eval-official');
    let result: EvaluateAlexNetResult | undefined;
    for (let i = 0; i < 240 && !result; i++) {
      for await (const w of client.workflow.list({ query: "WorkflowType = 'EvaluateAlexNet' AND ExecutionStatus = 'Completed'" })) {
        if (w.workflowId.startsWith('eval-official-run')) result = await client.workflow.getHandle(w.workflowId, w.runId).result() as EvaluateAlexNetResult;
      }
      if (!result) await new Promise((r) => setTimeout(r, 500));
    }
    t.truthy(result, 'the scheduled workflow completed');
    t.is(result!.checkpointKey, trained.latestCheckpoint);
    t.is(result!.images, TEST_IMAGES);
    t.true(await openStore(store).head(result!.reportKeys.html) !== undefined, 'report.html is in the store');
  } finally {
    await temporalCli('schedule', 'delete', '--schedule-id', 'eval-official');
  }
});
