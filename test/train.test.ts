// Training: exact resume of an interrupted epoch (the activity cancelled mid-epoch and
// retried ends bitwise identical to an uninterrupted epoch), and TrainAlexNet end to end
// on real Fashion-MNIST through the dev server (epochs, validation, LR policy, metrics).
import test from 'ava';
import { MockActivityEnvironment } from '@temporalio/testing';
import type { Client } from '@temporalio/client';

import * as activities from '../activities';
import { openStore } from '../activities/store';
import { datasetKeys, runKeys } from '../common/store-layout';
import { binaryPath, startTemporal, TemporalService } from '../infra/services';
import { decodeState } from '../native/state';
import { modelConfig } from '../native/index';
import { execFile, spawn } from 'child_process';
import { promisify } from 'util';
import type { EpochResult, TrainEpochInput } from '../common/contract';
import { CLI, tmpDir } from './helpers';
import { startS3, startTestWorker, startTrainingFixture, tensorBytes, TrainingFixture } from './temporal-helpers';

const QUEUE = 'train-test';
let fixture: TrainingFixture;
let temporal: TemporalService;
let client: Client;
let store: string;

test.before(async () => {
  fixture = await startTrainingFixture('alexnet-train-', QUEUE);
  ({ temporal, client, store } = fixture);
});

test.after.always(async () => {
  await fixture?.stop();
});

const epochInput = (runId: string): TrainEpochInput => ({
  runId, store, dataset: 'fashion', trainSplit: 'train', epoch: 0, lr: 0.01, batchSize: 32, seed: 5,
  crop: 32, pcaSigma: 0.1, checkpointEvery: 4, stallBatches: 1000,
});

test.serial('trainEpoch: an epoch cancelled mid-way and retried ends bitwise identical to an uninterrupted one', async (t) => {
  const s = openStore(store);
  for (const runId of ['straight', 'interrupted']) await activities.initRun({ runId, store, model: 'alexnet-32', classes: 10, seed: 5 });
  const straight = await new MockActivityEnvironment({ attempt: 1 }).run(activities.trainEpoch, epochInput('straight')) as EpochResult;
  const batches = Math.floor(fixture.images.train / 32);
  t.is(straight.batches, batches);

  const env = new MockActivityEnvironment({ attempt: 1 });
  env.on('heartbeat', (d: { batch: number }) => {
    if (d.batch === 9) env.cancel();
  });
  await t.throwsAsync(env.run(activities.trainEpoch, epochInput('interrupted')));
  const latest = JSON.parse((await s.get(runKeys('interrupted').latest)).toString()) as { batch: number };
  t.true(latest.batch >= 9 && latest.batch < batches, `checkpointed at batch ${latest.batch} when cancelled`);
  const resumed = await new MockActivityEnvironment({ attempt: 2 }).run(activities.trainEpoch, epochInput('interrupted')) as EpochResult;
  t.is(resumed.resumedAt, latest.batch);
  t.is(resumed.batchesThisAttempt, batches - latest.batch, 'no batch trained twice or skipped');
  const a = await s.get(straight.checkpointKey);
  const b = await s.get(resumed.checkpointKey);
  t.true(tensorBytes(a).equals(tensorBytes(b)), 'weights, momentum and RNG state identical');
});

test.serial('TrainAlexNet: trains alexnet-32 on Fashion-MNIST, validates each epoch, writes metrics', async (t) => {
  const result = await client.workflow.execute('TrainAlexNet', {
    taskQueue: QUEUE, workflowId: 'train-e2e',
    args: [{ store, datasetName: 'fashion', model: 'alexnet-32', epochs: 2, batchSize: 16, checkpointEvery: 10, lrPolicy: { type: 'fixed', lr: 0.01 }, seed: 1 }],
  }) as { epochs: number; lastValidation: { top1Error: number; top5Error: number; images: number } };
  t.is(result.epochs, 2);
  t.is(result.lastValidation.images, fixture.images.val, 'every image of the val split carved out of train counted once (never the test split)');
  t.log(`top-1 error after 2 epochs of ${fixture.images.train} images: ${result.lastValidation.top1Error}`);
  t.true(result.lastValidation.top1Error < 0.8, `top-1 error ${result.lastValidation.top1Error} is clearly below chance (0.9)`);
  t.true(result.lastValidation.top5Error <= result.lastValidation.top1Error);
  const metrics = (await openStore(store).get(runKeys('train-e2e').metrics)).toString().trim().split('\n').map((l) => JSON.parse(l) as { epoch: number });
  t.deepEqual(metrics.map((m) => m.epoch), [0, 1]);
});

test.serial('TrainAlexNet: bad input fails at once naming the field', async (t) => {
  const err = await t.throwsAsync(client.workflow.execute('TrainAlexNet', { taskQueue: QUEUE, workflowId: 'train-bad', args: [{ store, datasetName: 'fashion', batchSize: 0 }] }));
  t.regex((err as Error & { cause?: Error }).cause?.message ?? '', /for batchSize but received 0/);
});

test.serial('TrainAlexNet never validates on the test split: validationSplit test is refused, a dataset prepared without val is told to re-prepare', async (t) => {
  const refused = await t.throwsAsync(client.workflow.execute('TrainAlexNet', { taskQueue: QUEUE, workflowId: 'train-on-test', args: [{ store, datasetName: 'fashion', validationSplit: 'test' }] }));
  t.regex((refused as Error & { cause?: Error }).cause?.message ?? '', /validationSplit 'test': the test split is held out for EvaluateAlexNet/);
  // A dataset as PrepareDataset wrote it before validation splits were carved: train and test only.
  const s = openStore(store);
  for await (const o of s.list(datasetKeys('fashion').root + '/')) {
    if (o.key.endsWith('manifest.json')) continue;
    await s.put(o.key.replace('datasets/fashion/', 'datasets/fashion-old/'), await s.get(o.key));
  }
  const manifest = JSON.parse((await s.get(datasetKeys('fashion').manifest)).toString()) as { splits: Record<string, unknown>; carvedValidation?: unknown; name: string };
  delete manifest.splits.val;
  delete manifest.carvedValidation;
  await s.put(datasetKeys('fashion-old').manifest, JSON.stringify({ ...manifest, name: 'fashion-old' }));
  const err = await t.throwsAsync(client.workflow.execute('TrainAlexNet', { taskQueue: QUEUE, workflowId: 'train-old-dataset', args: [{ store, datasetName: 'fashion-old', model: 'alexnet-32', epochs: 1, batchSize: 16 }] }));
  const cause = (err as Error & { cause?: Error & { type?: string } }).cause;
  t.is(cause?.type, 'DatasetNeedsValidationSplit');
  t.regex(cause?.message ?? '', /has no 'val' split \(it has test, train\).*Prepare it again \(alexnet prepare .*--name fashion-old.*never validates on the test split/);
});

test.serial('official temporal CLI: start TrainAlexNet, query progress, signal stop', async (t) => {
  const cli = binaryPath('temporal');
  // Asynchronous: the worker runs in this process and must keep serving while the CLI waits.
  const run = async (...args: string[]) => (await promisify(execFile)(cli, [...args, '--address', temporal.address], { encoding: 'utf8' })).stdout;
  const input = { store, datasetName: 'fashion', model: 'alexnet-32', epochs: 50, batchSize: 16, checkpointEvery: 5, lrPolicy: { type: 'fixed', lr: 0.01 } };
  await run('workflow', 'start', '--type', 'TrainAlexNet', '--task-queue', QUEUE, '--workflow-id', 'train-cli', '--input', JSON.stringify(input));
  let progress: { phase: string; epoch: number } | undefined;
  for (let i = 0; i < 120 && progress?.phase !== 'training'; i++) {
    await new Promise((r) => setTimeout(r, 500));
    const out = JSON.parse(await run('workflow', 'query', '--workflow-id', 'train-cli', '--type', 'progress', '--output', 'json')) as { queryResult: [{ phase: string; epoch: number }] };
    progress = out.queryResult[0];
  }
  t.is(progress?.phase, 'training');
  await run('workflow', 'signal', '--workflow-id', 'train-cli', '--name', 'stop');
  const result = await client.workflow.getHandle('train-cli').result() as { stoppedBy: string; latestCheckpoint: string; lastValidation?: { images: number } };
  t.is(result.stoppedBy, 'signal');
  t.regex(result.latestCheckpoint, /^runs\/train-cli\/checkpoints\//);
  t.is(result.lastValidation?.images, fixture.images.val, 'the stopped run was validated');
});

test.serial('official temporal CLI: a misspelt field in --input fails the workflow at once, naming the field and the one meant; nothing is written', async (t) => {
  const cli = binaryPath('temporal');
  const run = async (...args: string[]) => (await promisify(execFile)(cli, [...args, '--address', temporal.address], { encoding: 'utf8' })).stdout;
  const input = { store, datasetName: 'fashion', model: 'alexnet-32', epoch: 3, batchSize: 16 };
  await run('workflow', 'start', '--type', 'TrainAlexNet', '--task-queue', QUEUE, '--workflow-id', 'train-misspelt', '--input', JSON.stringify(input));
  const err = await t.throwsAsync(run('workflow', 'result', '--workflow-id', 'train-misspelt'));
  t.regex(`${(err as Error & { stdout?: string }).stdout ?? ''}${err!.message}`, /Unknown field \\?"epoch\\?" in the TrainAlexNet input; did you mean \\?"epochs\\?"\?/);
  const description = JSON.parse(await run('workflow', 'describe', '--workflow-id', 'train-misspelt', '--output', 'json')) as { workflowExecutionInfo: { status: string } };
  t.is(description.workflowExecutionInfo.status, 'WORKFLOW_EXECUTION_STATUS_FAILED');
  t.false(await openStore(store).head(runKeys('train-misspelt').record).then(Boolean), 'no run.json: nothing was written before the check');
});

test.serial('preemption: a worker SIGKILLed 21 times within one epoch (more than any retry limit), then a pause and a resume, ends bitwise identical to an uninterrupted run', async (t) => {
  // Batches of 2 with a checkpoint every 2: ~150 checkpoints in the epoch, and each kill lands
  // within a poll (25 ms) of a new one, so 21 kills use well under half the epoch and none can
  // land after trainEpoch has already completed (which would cost no attempt).
  const base = { store, datasetName: 'fashion', model: 'alexnet-32', epochs: 1, batchSize: 2, checkpointEvery: 2, lrPolicy: { type: 'fixed', lr: 0.01 }, seed: 9, heartbeatTimeoutSeconds: 4 };
  const env = { ...process.env, TEMPORAL_ADDRESS: temporal.address };
  // Every worker process is killed when the test ends, however it ends (a live child would
  // keep this test process from exiting).
  const spawned: ReturnType<typeof spawn>[] = [];
  t.teardown(() => spawned.forEach((w) => w.kill('SIGKILL')));
  const spawnWorker = (queue: string) => {
    const w = spawn(process.execPath, [CLI, 'worker', '--task-queue', queue], { env, stdio: 'ignore' });
    spawned.push(w);
    return w;
  };
  // The reference: the same run on a worker process of its own, never killed, timed.
  const refWorker = spawnWorker('train-ref');
  const t0 = Date.now();
  const reference = await client.workflow.execute('TrainAlexNet', { taskQueue: 'train-ref', workflowId: 'resume-reference', args: [base] }) as { latestCheckpoint: string };
  const referenceSeconds = (Date.now() - t0) / 1000;
  refWorker.kill('SIGKILL');

  const killQueue = 'train-kill';
  const t1 = Date.now();
  const handle = await client.workflow.start('TrainAlexNet', { taskQueue: killQueue, workflowId: 'resume-killed', args: [base] });
  let kills = 0;
  let worker = spawnWorker(killQueue);
  const s = openStore(store);
  let done = false;
  const finished = handle.result().finally(() => void (done = true)).catch((e: Error & { cause?: Error & { cause?: Error } }) => {
    throw new Error(`the killed run failed: ${e.cause?.cause?.message ?? e.cause?.message ?? e.message}`);
  });
  finished.catch(() => undefined);  // awaited below; not an unhandled rejection meanwhile
  // Kill the worker as soon as it has written a checkpoint past the last one seen; after the
  // last kill no worker is started.
  let lastSeen = '';
  while (!done && kills < 21) {
    await new Promise((r) => setTimeout(r, 25));
    const latest = await s.head(runKeys('resume-killed').latest) ? (await s.get(runKeys('resume-killed').latest)).toString() : '';
    if (latest && latest !== lastSeen && /"batch":([1-9])/.test(latest)) {
      lastSeen = latest;
      const gone = new Promise((r) => worker.once('exit', r));
      worker.kill('SIGKILL');
      await gone;
      kills++;
      if (kills < 21) worker = spawnWorker(killQueue);
    }
  }
  // Then a pause that finds the attempt dead, and a resume. Only a worker of workflows runs
  // meanwhile, so no attempt can finish the epoch first: the server times the dead attempt
  // out and, its cancel requested, retries no more (the workflow takes that as the pause).
  // The resume schedules a new activity, whose Temporal attempt count starts again at 1
  // while latest.json names attempt 21: its checkpoints must still win (trainEpoch numbers
  // attempts on from the epoch's record).
  const pauseStart = Date.now();
  const workflowsOnly = await startTestWorker(temporal.address, killQueue, null);
  t.teardown(() => workflowsOnly.stop());
  await handle.signal('pause');
  let paused = false;
  for (let i = 0; i < 600 && !done && !paused; i++) {
    paused = (await handle.query<{ phase: string }>('progress')).phase === 'paused';
    if (!paused) await new Promise((r) => setTimeout(r, 100));
  }
  if (!paused) {
    // Say what happened instead: the run's end (or failure).
    const outcome = await finished.then((r) => `it completed: ${JSON.stringify(r)}`, (e: Error) => e.message);
    t.fail(`the run did not pause after ${kills} kills: ${outcome}`);
    return;
  }
  worker = spawnWorker(killQueue);
  await handle.signal('resume');
  const pausedMs = Date.now() - pauseStart;
  const result = await finished as { latestCheckpoint: string; epochs: number };
  const killedSeconds = (Date.now() - t1 - pausedMs) / 1000;  // the time paused left out
  worker.kill('SIGKILL');
  const lostPerKill = (killedSeconds - referenceSeconds) / Math.max(1, kills);
  t.log(`worker killed ${kills} times in one epoch: ${killedSeconds.toFixed(1)} s against ${referenceSeconds.toFixed(1)} s uninterrupted, ` +
    `${lostPerKill.toFixed(1)} s lost per kill (heartbeat timeout 4 s)`);
  t.is(kills, 21, 'more kills than the 20 attempts the old retry policy allowed');
  t.is(result.epochs, 1);
  t.true(tensorBytes(await s.get(result.latestCheckpoint)).equals(tensorBytes(await s.get(reference.latestCheckpoint))),
    'weights, momentum and RNG state are identical: no batch was trained twice or skipped');
  const last = JSON.parse((await s.get(runKeys('resume-killed').attempts(0))).toString()) as { attempt: number; failuresInARow: number };
  // 21 killed attempts, then the one the resume scheduled (Temporal's count back at 1) numbered on from them.
  t.true(last.attempt >= 22, `the epoch ended on attempt ${last.attempt}: every kill cost one attempt, the resume's came after them, none was refused`);
  t.is(last.failuresInARow, 0, 'every killed attempt had made progress');
});

test.serial('preemption: attempts failing again and again from the same checkpoint fail the run, naming the checkpoint and the last error', async (t) => {
  // A copy of the dataset whose training batch files are missing (a failed read, which a
  // retry might get past: a corrupt file would fail the run at once, CorruptBatch): every
  // attempt fails at its first batch, before any new checkpoint.
  const s = openStore(store);
  const from = datasetKeys('fashion').root, to = datasetKeys('fashion-corrupt').root;
  for await (const o of s.list(`${from}/`)) {
    if (!o.key.includes('/batches/train/')) await s.put(to + o.key.slice(from.length), await s.get(o.key));
  }
  const handle = await client.workflow.start('TrainAlexNet', {
    taskQueue: QUEUE, workflowId: 'no-progress',
    args: [{ store, datasetName: 'fashion-corrupt', model: 'alexnet-32', epochs: 1, batchSize: 8, lrPolicy: { type: 'fixed', lr: 0.01 }, maxFailuresPerCheckpoint: 3 }],
  });
  const err = await t.throwsAsync(handle.result());
  const cause = (err as Error & { cause?: Error & { type?: string; nonRetryable?: boolean } }).cause;
  t.is(cause?.type, 'NoProgress');
  t.regex(cause?.message ?? '', /^epoch 0 failed 3 times in a row from checkpoint runs\/no-progress\/checkpoints\/\S+ without progress; last error: .*datasets\/fashion-corrupt\/batches\/train\//);
  const last = JSON.parse((await s.get(runKeys('no-progress').attempts(0))).toString()) as { attempt: number; failuresInARow: number };
  t.deepEqual([last.attempt, last.failuresInARow], [3, 2], 'the third attempt was the last to train; the fourth stopped the run');
});

test.serial('temporal activity pause / unpause (the official CLI): the epoch stops at a checkpoint, progress shows paused, unpause continues it', async (t) => {
  const cli = binaryPath('temporal');
  const run = async (...args: string[]) => (await promisify(execFile)(cli, [...args, '--address', temporal.address], { encoding: 'utf8' })).stdout;
  const id = 'activity-pause';
  const handle = await client.workflow.start('TrainAlexNet', {
    taskQueue: QUEUE, workflowId: id,
    args: [{ store, datasetName: 'fashion', model: 'alexnet-32', epochs: 50, batchSize: 8, checkpointEvery: 4, lrPolicy: { type: 'fixed', lr: 0.01 } }],
  });
  const s = openStore(store);
  const latestBatch = async () => await s.head(runKeys(id).latest) ? (JSON.parse((await s.get(runKeys(id).latest)).toString()) as { epoch: number; batch: number }) : undefined;
  const until = async (what: string, ok: () => Promise<boolean>) => {
    for (let i = 0; i < 300; i++) {
      if (await ok()) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`timed out waiting for ${what}`);
  };
  const phase = async () => (await handle.query<{ phase: string }>('progress')).phase;
  await until('training past the first checkpoint', async () => ((await latestBatch())?.batch ?? 0) >= 4);

  await run('activity', 'pause', '--workflow-id', id, '--activity-type', 'trainEpoch');
  await until('the progress query to show paused', async () => (await phase()) === 'paused');
  const held = await latestBatch();
  await new Promise((r) => setTimeout(r, 2000));
  t.deepEqual(await latestBatch(), held, 'no training while paused');

  await run('activity', 'unpause', '--workflow-id', id, '--activity-type', 'trainEpoch');
  await until('the progress query to show training', async () => (await phase()) === 'training');
  await until('a checkpoint past the pause', async () => {
    const now = await latestBatch();
    return !!now && !!held && (now.epoch > held.epoch || now.batch > held.batch);
  });
  await handle.signal('stop');
  const result = await handle.result() as { stoppedBy: string };
  t.is(result.stoppedBy, 'signal');
  const record = JSON.parse((await s.get(runKeys(id).attempts(held!.epoch))).toString()) as { attempt: number; failuresInARow: number };
  t.is(record.failuresInARow, 0, 'the pause did not count as a failure');
});

test.serial('checkpoint retention: 3 epochs with a checkpoint every 2 batches keep exactly the policy\'s checkpoints, the metrics list the rest, and a resume after deletions is bitwise exact', async (t) => {
  const base = { store, datasetName: 'fashion', model: 'alexnet-32', epochs: 3, batchSize: 16, checkpointEvery: 2, lrPolicy: { type: 'fixed', lr: 0.01 }, seed: 4 };
  const reference = await client.workflow.execute('TrainAlexNet', { taskQueue: QUEUE, workflowId: 'retention-reference', args: [{ ...base, retention: { keepAll: true } }] }) as { latestCheckpoint: string };
  const s = openStore(store);
  const listed = async (run: string) => {
    const keys: string[] = [];
    for await (const o of s.list(runKeys(run).checkpoints)) keys.push(o.key);
    return keys.sort();
  };
  const everything = await listed('retention-reference');
  const perEpoch = Math.ceil(Math.floor(fixture.images.train / 16) / 2);  // every 2 full batches, and the epoch's last
  t.is(everything.length, 1 + 3 * perEpoch, `keepAll: the initial checkpoint and ${perEpoch} per epoch (${fixture.images.train} images, batch 16, every 2)`);

  // The same run with the default policy, paused and resumed in its last epoch (after
  // deletions: the resume loads a checkpoint that retention chose to keep).
  const handle = await client.workflow.start('TrainAlexNet', { taskQueue: QUEUE, workflowId: 'retention', args: [base] });
  for (let i = 0; i < 600; i++) {
    const latest = await s.head(runKeys('retention').latest) ? JSON.parse((await s.get(runKeys('retention').latest)).toString()) as { epoch: number; batch: number } : undefined;
    if (latest && latest.epoch === 2 && latest.batch >= 10) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  await handle.signal('pause');
  for (let i = 0; i < 300 && (await handle.query<{ phase: string }>('progress')).phase !== 'paused'; i++) await new Promise((r) => setTimeout(r, 100));
  await handle.signal('resume');
  const result = await handle.result() as { latestCheckpoint: string };
  t.true(tensorBytes(await s.get(result.latestCheckpoint)).equals(tensorBytes(await s.get(reference.latestCheckpoint))),
    'the run that deleted checkpoints and resumed mid-epoch ends bitwise identical');

  // Kept: the initial checkpoint, every epoch's last (keepEpochEvery 1; the best epoch's is
  // among them), latest (the last epoch's final one) and the newest two mid-epoch ones
  // before it (keepLast 2): epoch 2's last two before its end, whichever attempt wrote them
  // (the pause wrote one off the every-2-batches grid).
  const kept = (await listed('retention')).map((k) => k.replace(/^.*\//, ''));
  const bytes = async (keys: string[]) => { let n = 0; for (const k of keys) n += (await s.head(k))?.size ?? 0; return n; };
  t.log(`checkpoint bytes after 3 epochs: ${await bytes(await listed('retention-reference'))} kept by keepAll, ${await bytes(await listed('retention'))} by the default policy`);
  const names = (epoch: number, batch: number, attempt: number) => `${String(epoch).padStart(5, '0')}-${String(batch).padStart(7, '0')}-${String(attempt).padStart(3, '0')}.safetensors`;
  const last = Math.floor(fixture.images.train / 16);  // batches per epoch (even here: the last is on the grid)
  const deleted: string[] = [];
  for await (const o of s.list(runKeys('retention').deletions)) deleted.push(...(JSON.parse((await s.get(o.key)).toString()) as { deleted: string[] }).deleted);
  const cursor = (name: string) => name.split(/[-.]/).slice(0, 3).map(Number);
  const epoch2Mid = [...kept, ...deleted.map((k) => k.replace(/^.*\//, ''))]
    .filter((n) => cursor(n)[0] === 2 && cursor(n)[1] < last)
    .sort((a, b) => cursor(a)[1] - cursor(b)[1] || cursor(a)[2] - cursor(b)[2]);
  t.deepEqual(kept, [names(0, 0, 0), names(0, last, 1), names(1, last, 1), ...epoch2Mid.slice(-2), result.latestCheckpoint.replace(/^.*\//, '')].sort());
  t.is(cursor(result.latestCheckpoint.replace(/^.*\//, ''))[1], last);
  // The deletion logs name every checkpoint written and not kept, once; the metrics carry
  // what each epoch's completing attempt deleted.
  t.is(new Set(deleted).size, deleted.length, 'each checkpoint deleted once');
  t.true(deleted.every((k) => !kept.includes(k.replace(/^.*\//, ''))), 'nothing kept was deleted');
  // Deleted and kept: every checkpoint the uninterrupted run wrote, plus at most the one the
  // pause wrote off the every-2-batches grid.
  // By cursor (epoch-batch): the attempt after the resume numbers its checkpoints on.
  const atCursor = (k: string) => k.replace(/^.*\//, '').split('-').slice(0, 2).join('-');
  const written = new Set(everything.map(atCursor));
  const accounted = new Set([...deleted, ...kept].map(atCursor));
  t.true([...written].every((k) => accounted.has(k)), 'every checkpoint written is kept or on a deletion log');
  t.true(accounted.size - written.size <= 1, `${accounted.size} accounted for, ${written.size} written uninterrupted`);
  const records = (await s.get(runKeys('retention').metrics)).toString().trim().split('\n').map((l) => JSON.parse(l) as { kind: string; train?: { checkpointsDeleted?: string[] } });
  t.true(records.filter((r) => r.kind === 'epoch').every((r) => Array.isArray(r.train?.checkpointsDeleted)), 'each epoch record lists its deletions');
});

test.serial('TrainAlexNet signals: pause stops at a batch boundary, setLearningRate applies, resume continues', async (t) => {
  const handle = await client.workflow.start('TrainAlexNet', {
    taskQueue: QUEUE, workflowId: 'train-signals',
    args: [{ store, datasetName: 'fashion', model: 'alexnet-32', epochs: 2, batchSize: 8, checkpointEvery: 4, lrPolicy: { type: 'fixed', lr: 0.01 } }],
  });
  const phase = async (want: string) => {
    for (let i = 0; i < 200; i++) {
      const p = await handle.query<{ phase: string }>('progress');
      if (p.phase === want) return p;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`never reached phase ${want}`);
  };
  await phase('training');
  await handle.signal('pause');
  await phase('paused');
  const latest = JSON.parse((await openStore(store).get(runKeys('train-signals').latest)).toString()) as { epoch: number; batch: number };
  await handle.signal('setLearningRate', 0.005);
  await handle.signal('resume');
  const result = await handle.result() as { epochs: number; lrHistory: { lr: number; reason: string }[] };
  t.is(result.epochs, 2);
  t.true(latest.epoch === 0, `paused in epoch 0 at batch ${latest.batch}`);
  t.deepEqual(result.lrHistory.map((h) => h.lr), [0.01, 0.005]);
  const metrics = (await openStore(store).get(runKeys('train-signals').metrics)).toString().trim().split('\n').map((l) => JSON.parse(l) as { epoch: number; lr: number; train: { resumedAt: number } });
  t.is(metrics[0].lr, 0.005, 'the new LR applies to the resumed epoch');
  t.is(metrics[0].train.resumedAt, latest.batch, 'the epoch resumed at the batch where it paused');
});

test.serial('TrainAlexNet: continueAsNew (server threshold lowered) gives the same result as one run', async (t) => {
  const input = { store, datasetName: 'fashion', model: 'alexnet-32', epochs: 3, batchSize: 32, checkpointEvery: 10, lrPolicy: { type: 'fixed', lr: 0.01 }, seed: 4 };
  const plain = await client.workflow.execute('TrainAlexNet', { taskQueue: QUEUE, workflowId: 'can-reference', args: [input] }) as { latestCheckpoint: string; epochs: number };
  const low = await startTemporal({ dir: tmpDir('alexnet-can-'), dynamicConfig: { 'limit.historyCount.suggestContinueAsNew': 20 } });
  const w = await startTestWorker(low.address, 'can');
  const c = w.client;
  try {
    const result = await c.workflow.execute('TrainAlexNet', { taskQueue: 'can', workflowId: 'can-run', args: [input] }) as { latestCheckpoint: string; epochs: number };
    const runs = [];
    for await (const e of c.workflow.list({ query: "WorkflowId = 'can-run'" })) runs.push(e.runId);
    t.true(runs.length >= 2, `continued as new: ${runs.length} runs`);
    t.is(result.epochs, plain.epochs);
    const s = openStore(store);
    t.true(tensorBytes(await s.get(result.latestCheckpoint)).equals(tensorBytes(await s.get(plain.latestCheckpoint))));
    const metrics = (await s.get(runKeys('can-run').metrics)).toString().trim().split('\n').map((l) => (JSON.parse(l) as { epoch: number }).epoch);
    t.deepEqual(metrics, [0, 1, 2]);
  } finally {
    await w.stop();
    await low.stop();
  }
});

test.serial('TrainAlexNet: a Temporal server restart mid-run does not stop the run', async (t) => {
  const dir = tmpDir('alexnet-restart-');
  let server = await startTemporal({ dir });
  const port = Number(server.address.split(':')[1]);
  const w = await startTestWorker(server.address, 'restart');
  const c = w.client;
  try {
    const input = { store, datasetName: 'fashion', model: 'alexnet-32', epochs: 3, batchSize: 16, checkpointEvery: 5, lrPolicy: { type: 'fixed', lr: 0.01 }, seed: 6, heartbeatTimeoutSeconds: 10 };
    await c.workflow.start('TrainAlexNet', { taskQueue: 'restart', workflowId: 'restart-run', args: [input] });
    const s = openStore(store);
    for (let i = 0; i < 200 && !(await s.head(runKeys('restart-run').metrics)); i++) await new Promise((r) => setTimeout(r, 100));
    await server.stop();
    await new Promise((r) => setTimeout(r, 2000));
    server = await startTemporal({ dir, port });
    const result = await c.workflow.getHandle('restart-run').result() as { epochs: number };
    t.is(result.epochs, 3);
    const epochs = (await s.get(runKeys('restart-run').metrics)).toString().trim().split('\n').map((l) => (JSON.parse(l) as { epoch: number }).epoch);
    t.deepEqual(epochs, [0, 1, 2]);
  } finally {
    await w.stop();
    await server.stop();
  }
});

test.serial('TrainAlexNet on MinIO: the store restarted mid-run, no corrupt checkpoint is ever referenced', async (t) => {
  const s3 = await startS3('runs', tmpDir('alexnet-minio-restart-'));
  const s3store = `${s3.uri}/x`;
  try {
    await client.workflow.execute('PrepareDataset', { taskQueue: QUEUE, workflowId: 'minio-restart-prepare', args: [{ dataset: fixture.dataset, store: s3store, name: 'fashion', imageSize: 36, shardSize: 200 }] });
    const handle = await client.workflow.start('TrainAlexNet', {
      taskQueue: QUEUE, workflowId: 'minio-restart',
      args: [{ store: s3store, datasetName: 'fashion', model: 'alexnet-32', epochs: 2, batchSize: 16, checkpointEvery: 2, lrPolicy: { type: 'fixed', lr: 0.01 }, seed: 2, heartbeatTimeoutSeconds: 10 }],
    });
    let done = false;
    const result = handle.result().finally(() => void (done = true));
    let restarts = 0;
    while (!done && restarts < 3) {
      await new Promise((r) => setTimeout(r, 1200 + Math.random() * 800));
      if (done) break;
      await s3.restart(500);
      restarts++;
    }
    const r = await result as { epochs: number; latestCheckpoint: string };
    t.is(r.epochs, 2);
    t.log(`MinIO restarted ${restarts} times during the run`);
    const s = openStore(s3store);
    let verified = 0;
    for await (const o of s.list(runKeys('minio-restart').checkpoints)) {
      decodeState(await s.get(o.key), o.key);  // throws on a partial or corrupt object
      verified++;
    }
    const latest = JSON.parse((await s.get(runKeys('minio-restart').latest)).toString()) as { key: string };
    t.is(latest.key, r.latestCheckpoint);
    // Retention keeps a few (the initial one, epoch 0's last, the newest two); the rest of
    // the 2 x 20 written are on the deletion logs.
    let deleted = 0;
    for await (const o of s.list(runKeys('minio-restart').deletions)) deleted += (JSON.parse((await s.get(o.key)).toString()) as { deleted: string[] }).deleted.length;
    t.true(verified >= 4, `${verified} checkpoints kept, every one whole`);
    t.true(verified + deleted >= 10, `${verified} kept and ${deleted} deleted`);
  } finally {
    await s3.stop();
  }
});

test.serial('trainEpoch: a stalled run (paper init on the small net, loss stuck at ln 10) is flagged', async (t) => {
  const config = modelConfig('alexnet-32');
  config.weightStd = 0.01;
  for (const l of config.layers) if ('name' in l && ['conv2', 'conv4', 'conv5', 'fc6', 'fc7'].includes(l.name)) (l as { biasInit: number }).biasInit = 1;
  await activities.initRun({ runId: 'stalled', store, model: config, classes: 10, seed: 1 });
  const r = await new MockActivityEnvironment().run(activities.trainEpoch, { ...epochInput('stalled'), batchSize: 16, stallBatches: 10 }) as EpochResult;
  t.true(r.stalled, `last 10 batches' loss ${r.recentLoss}, ln 10 = ${Math.log(10)}`);
  await activities.initRun({ runId: 'healthy', store, model: 'alexnet-32', classes: 10, seed: 1 });
  let h: EpochResult | undefined;
  for (let epoch = 0; epoch < 3; epoch++) {  // the healthy net leaves ln 10 within a few epochs
    h = await new MockActivityEnvironment().run(activities.trainEpoch, { ...epochInput('healthy'), epoch, batchSize: 16, stallBatches: 10 }) as EpochResult;
  }
  t.false(h!.stalled, `last 10 batches' loss ${h!.recentLoss}`);
});

test.serial('trainEpoch: a diverging loss fails the epoch non-retryably and keeps the last good checkpoint', async (t) => {
  await activities.initRun({ runId: 'diverge', store, model: 'alexnet-32', classes: 10, seed: 1 });
  const err = await t.throwsAsync(new MockActivityEnvironment().run(activities.trainEpoch, { ...epochInput('diverge'), lr: 1e3 }));
  t.regex(err!.message, /loss is (NaN|Inf).*the last good checkpoint is runs\/diverge\/checkpoints\//);
  t.true((err as Error & { nonRetryable?: boolean }).nonRetryable);
  const latest = JSON.parse((await openStore(store).get(runKeys('diverge').latest)).toString()) as { key: string };
  t.true(err!.message.includes(latest.key), 'the checkpoint named is the one latest.json points at');
});

test.serial('alexnet train: follows the run and prints the result as its last line', async (t) => {
  const out = await promisify(execFile)(process.execPath, [CLI, 'train', '--store', store, '--dataset-name', 'fashion', '--model', 'alexnet-32', '--epochs', '1',
    '--batch-size', '32', '--lr-policy', '{"type":"fixed","lr":0.01}', '--id', 'cli-train', '--task-queue', QUEUE], { env: { ...process.env, TEMPORAL_ADDRESS: temporal.address }, encoding: 'utf8' });
  const result = JSON.parse(out.stdout.trim().split('\n').pop()!) as { workflowId: string; epochs: number; stoppedBy: string; lastValidation: { images: number } };
  t.like(result, { workflowId: 'cli-train', epochs: 1, stoppedBy: 'epochs', lastValidation: { images: fixture.images.val } });
});
