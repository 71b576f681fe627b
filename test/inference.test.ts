// Inference on a trained run: the model resolved from the store (serving.json, else
// latest.json; the dataset from run.json), `classify` giving exactly evaluation's
// probabilities on the original JPEGs, and EvaluateAlexNet's promotion.
import test from 'ava';
import { execFile } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { promisify } from 'util';

import { readBatches } from '../activities/batch-reader';
import { classifyImages, type ImagePrediction } from '../activities/classify';
import { loadInferenceModel } from '../activities/model';
import { promotionDecision } from '../activities/promotion';
import { scoreBatch } from '../activities/scoring';
import { getJson, openStore } from '../activities/store';
import type { EvaluateAlexNetResult, ServingPointer, TrainResult } from '../common/contract';
import type { Shard } from '../common/shard-plan';
import { datasetKeys, runKeys } from '../common/store-layout';
import { CLI } from './helpers';
import { startTrainingFixture, TrainingFixture } from './temporal-helpers';

const QUEUE = 'inference-test';
let fixture: TrainingFixture;
let trained: TrainResult & { latestCheckpoint: string };

test.before(async () => {
  fixture = await startTrainingFixture('alexnet-inference-', QUEUE);
  trained = await fixture.client.workflow.execute('TrainAlexNet', {
    taskQueue: QUEUE, workflowId: 'infer-run',
    args: [{ store: fixture.store, datasetName: 'fashion', model: 'alexnet-32', epochs: 2, batchSize: 16, checkpointEvery: 10, lrPolicy: { type: 'fixed', lr: 0.01 }, seed: 3 }],
  });
});

test.after.always(async () => {
  await fixture?.stop();
});

test.serial('classify: the original JPEGs of the test split get the probabilities evaluation scores from the prepared batches', async (t) => {
  const store = openStore(fixture.store);
  const model = await loadInferenceModel({ store: fixture.store, run: 'infer-run' });
  t.is(model.checkpoint.from, 'latest', 'nothing promoted yet: the newest checkpoint');
  t.is(model.checkpoint.key, trained.latestCheckpoint);
  t.is(model.datasetName, 'fashion', 'the dataset comes from run.json');
  const manifest = await getJson<{ splits: Record<string, { shards: number }> }>(store, datasetKeys('fashion').manifest);
  const classes = model.net.config.classes;
  let compared = 0;
  let worst = 0;
  let topMismatch = 0;
  for (const crops of [1, 10] as const) {
    for (let shard = 0; shard < manifest.splits.test.shards; shard++) {
      const keys = datasetKeys('fashion');
      const plan = await getJson<Shard>(store, keys.shard('test', shard));
      // Evaluation's scoring of the prepared batch file: the reference.
      const reference: Float64Array[] = [];
      for await (const b of readBatches(store, [keys.batch('test', shard)])) {
        await scoreBatch(model.net, b, b.key, model.mean, crops, 128, (probs, labels) => {
          for (let i = 0; i < labels.length; i++) reference.push(probs.slice(i * classes, (i + 1) * classes));
        });
      }
      t.is(reference.length, plan.images.length);
      const images = plan.images.map((img) => ({ image: img.key, data: fs.readFileSync(path.join(fixture.dataset, img.key)) }));
      const answers = await classifyImages(model, images, { topK: classes, crops });
      answers.forEach((a, i) => {
        if (!('top' in a)) return t.fail(`${a.image}: ${a.error}`);
        const ref = reference[i];
        const best = ref.indexOf(Math.max(...ref));
        if (a.top[0].class !== model.classIds[best]) topMismatch++;
        for (const p of a.top) worst = Math.max(worst, Math.abs(p.probability - ref[model.classIds.indexOf(p.class)]));
        compared++;
      });
    }
  }
  t.log(`${compared} classifications (1 and 10 crops) against evaluation's scoring: max |dp| ${worst.toExponential(2)}`);
  t.is(compared, 2 * fixture.images.test);
  t.is(topMismatch, 0, 'the same top-1 on every image');
  t.true(worst <= 1e-5, `probabilities within 1e-5 (max ${worst})`);
});

test.serial('alexnet classify: one JSON line per image, a corrupt file answered with its reason, exit 1; exit 0 when all are read', async (t) => {
  const dir = path.join(fixture.dataset, 'test');
  const files = fs.readdirSync(dir, { recursive: true }).map(String).filter((f) => f.endsWith('.jpg')).sort().slice(0, 3).map((f) => path.join(dir, f));
  const bad = path.join(fixture.dir, 'truncated.jpg');
  fs.writeFileSync(bad, fs.readFileSync(files[0]).subarray(0, 100));
  const args = ['classify', ...files, bad, '--store', fixture.store, '--run', 'infer-run', '--top', '3'];
  const err = await t.throwsAsync(promisify(execFile)(process.execPath, [CLI, ...args], { encoding: 'utf8' })) as Error & { code: number; stdout: string; stderr: string };
  t.is(err.code, 1);
  const lines = err.stdout.trim().split('\n').map((l) => JSON.parse(l) as ImagePrediction);
  t.deepEqual(lines.map((l) => l.image), [...files, bad]);
  t.true(lines.slice(0, 3).every((l) => 'top' in l && l.top.length === 3 && l.top[0].probability >= l.top[1].probability));
  t.regex('error' in lines[3] ? lines[3].error : '', /corrupt or truncated JPEG/);
  t.regex(err.stderr, /run infer-run: .*newest in latest\.json; nothing promoted/);
  const ok = await promisify(execFile)(process.execPath, [CLI, 'classify', files[0], '--store', fixture.store, '--run', 'infer-run'], { encoding: 'utf8' });
  const one = JSON.parse(ok.stdout.trim()) as { top: { class: string; name: string }[] };
  t.is(one.top.length, 5);
  t.is(one.top[0].name, one.top[0].class, 'Fashion-MNIST names its classes by their folders');
  const usage = await t.throwsAsync(promisify(execFile)(process.execPath, [CLI, 'classify', files[0], '--store', fixture.store, '--run', 'no-such-run'], { encoding: 'utf8' })) as Error & { stderr: string };
  t.regex(usage.stderr, /run 'no-such-run' has no checkpoint/);
});

test.serial('EvaluateAlexNet promote: serving.json moves to a better checkpoint only, and inference follows it', async (t) => {
  const store = openStore(fixture.store);
  const evaluate = (id: string, checkpoint: string | { run: string }) => fixture.client.workflow.execute('EvaluateAlexNet', {
    taskQueue: QUEUE, workflowId: id, args: [{ store: fixture.store, checkpoint, datasetName: 'fashion', crops: 1, promote: true }],
  }) as Promise<EvaluateAlexNetResult>;
  const first = await evaluate('promote-1', { run: 'infer-run' });
  t.like(first.promotion, { promoted: true, serving: trained.latestCheckpoint, reason: 'no checkpoint was promoted yet' });
  const serving = await getJson<ServingPointer>(store, runKeys('infer-run').serving);
  t.like(serving, { checkpoint: trained.latestCheckpoint, split: 'test', crops: 1, top1Error: first.top1Error, evaluation: 'promote-1' });
  // The initial (untrained) checkpoint is worse: not promoted.
  const initial = runKeys('infer-run').checkpoint(0, 0, 0);
  const second = await evaluate('promote-2', initial);
  t.false(second.promotion!.promoted);
  t.regex(second.promotion!.reason, /does not beat/);
  t.is((await getJson<ServingPointer>(store, runKeys('infer-run').serving)).checkpoint, trained.latestCheckpoint);
  const model = await loadInferenceModel({ store: fixture.store, run: 'infer-run' });
  t.is(model.checkpoint.from, 'serving');
  t.is(model.checkpoint.key, trained.latestCheckpoint);
});

test('promotionDecision: first, better, worse, same, gone, other split', (t) => {
  const cand = { store: '', runId: 'r', checkpointKey: 'b', split: 'test', crops: 1 as const, images: 10, top1Error: 0.2, top5Error: 0.01, report: '', evaluation: '' };
  const cur: ServingPointer = { checkpoint: 'a', top1Error: 0.3, top5Error: 0.02, split: 'test', crops: 1, images: 10, report: '', evaluation: '', promotedAt: '' };
  t.true(promotionDecision(undefined, false, cand).promote);
  t.true(promotionDecision(cur, true, cand).promote);
  t.false(promotionDecision({ ...cur, top1Error: 0.2 }, true, cand).promote, 'a tie keeps the current one');
  t.false(promotionDecision({ ...cur, checkpoint: 'b' }, true, cand).promote);
  t.true(promotionDecision({ ...cur, top1Error: 0.1 }, false, cand).promote, 'the promoted checkpoint is gone');
  t.regex(promotionDecision({ ...cur, split: 'val' }, true, cand).reason, /evaluate with --split val --crops 1/);
});
