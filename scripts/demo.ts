// npm run demo: the whole pipeline on the real Fashion-MNIST data, on this machine.
// Starts a Temporal dev server and MinIO (state under .data/demo, so an interrupted demo
// resumes where it stopped when run again), runs a worker in this process, then:
// import (Debian's IDX files -> real JPEGs in class folders), PrepareDataset (sharp ->
// batch files and statistics in S3), TrainAlexNet (alexnet-32 with the paper's SGD,
// dropout, augmentation; checkpoints in S3), EvaluateAlexNet (the paper's 10-crop test)
// and the report, copied to .data/demo/report/; then alexnet serve on the trained run
// classifies a few test JPEGs over HTTP.
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { Presets, SingleBar } from 'cli-progress';
import * as fs from 'fs';
import * as path from 'path';

import { requestWorkerStop } from '../activities/activity-context';
import { sizeDecodeThreadpool } from '../activities/decode-image';
import { importFashionMnist } from './importers/fashion-mnist';
import { openStore } from '../activities/store';
import { ensureBucket } from '../activities/store/bucket';
import { MinioService, startMinio, startTemporal, TemporalService, useMinioCredentials } from '../infra/services';
import type { EvaluateAlexNetInput, PrepareDatasetInput, TrainAlexNetInput } from '../common/contract';
import { followEvaluation, followPrepare, followTraining } from './follow';
import { InProcessWorker, startInProcessWorker } from './in-process-worker';
import { startServer } from './serve/server';

const TASK_QUEUE = 'alexnet-demo';
const BUCKET = 'alexnet-demo';
const DATASET = 'fashion-mnist';
const RUN = 'demo-fashion-mnist';

function envInt(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be an integer >= 1, got '${v}'`);
  return n;
}

const elapsed = (t0: number) => `${((Date.now() - t0) / 1000).toFixed(0)} s`;

async function run(): Promise<void> {
  sizeDecodeThreadpool();
  const t0 = Date.now();
  const dir = path.resolve(process.env.ALEXNET_DEMO_DIR ?? '.data/demo');
  // 20 epochs fit in 30 minutes on 2 cores, setup included (docs/setup.md has the run);
  // 14 gave 91.56% 10-crop top-1 (2026-12-01), 10 gave 90.86%.
  const epochs = envInt('ALEXNET_DEMO_EPOCHS', 20);
  // ALEXNET_DEMO_PRECISION=bf16 trains with bf16 GEMM inputs (docs/model.md#precision).
  const precision = process.env.ALEXNET_DEMO_PRECISION || 'fp32';
  if (precision !== 'fp32' && precision !== 'bf16') throw new Error(`ALEXNET_DEMO_PRECISION must be fp32 or bf16, not '${precision}'`);
  const store = `s3://${BUCKET}`;
  console.log(`alexnet demo: Fashion-MNIST (70,000 real images) -> JPEGs -> PrepareDataset -> TrainAlexNet (alexnet-32, ${epochs} epochs, ${precision}) -> EvaluateAlexNet (10-crop) -> report`);
  console.log(`state under ${dir}: interrupt at any time (Ctrl-C) and run \`npm run demo\` again to resume; delete it to start over`);

  const services: { temporal?: TemporalService; minio?: MinioService } = {};
  let inProcess: InProcessWorker | undefined;
  const cleanup = async () => {
    await inProcess?.stop();
    await services.temporal?.stop();
    await services.minio?.stop();
  };
  // The worker stops on SIGINT/SIGTERM by itself (a running epoch checkpoints first);
  // then the services go too, and the next run picks up from the same state.
  Runtime.install({ shutdownSignals: [], logger: new DefaultLogger('WARN') });
  let interrupted = false;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      interrupted = true;
      requestWorkerStop();
      console.error(`\n${signal}: stopping the worker (the current epoch checkpoints) and the services; run \`npm run demo\` again to resume`);
      void cleanup().finally(() => process.exit(130));
    });
  }
  try {
    services.temporal = await startTemporal({ dir: path.join(dir, 'temporal') });
    services.minio = await startMinio({ dir: path.join(dir, 'minio') });
    console.log(`services: Temporal ${services.temporal.address} (web UI ${services.temporal.uiUrl}), MinIO ${services.minio.endpoint} (bucket ${BUCKET})`);
    // The activities find the store's credentials the standard AWS way: the environment.
    useMinioCredentials(services.minio);
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
    await ensureBucket(store);

    inProcess = await startInProcessWorker(services.temporal.address, TASK_QUEUE);
    const client = inProcess.client;

    // 1. Import: Debian's IDX files -> JPEG files in class folders (skips what is there).
    const images = path.join(dir, 'fashion-mnist');
    const bar = new SingleBar({ format: 'import [{bar}] {value}/{total} JPEGs', stream: process.stderr, noTTYOutput: !process.stderr.isTTY, notTTYSchedule: 30_000 }, Presets.shades_classic);
    let barStarted = false;
    const imported = await importFashionMnist(images, {
      onProgress: (done, total) => {
        if (!barStarted) bar.start(total, 0);
        barStarted = true;
        bar.update(done);
      },
    });
    if (barStarted) bar.stop();
    console.log(`import: ${imported.splits.train} train + ${imported.splits.test} test JPEGs in ${images} (${imported.written} written, ${imported.skipped} already there) [${elapsed(t0)}]`);

    // 2. PrepareDataset: 36x36 images (alexnet-32 trains on random 32x32 crops of them).
    const prepareInput: PrepareDatasetInput = { dataset: images, store, name: DATASET, imageSize: 36, shardSize: 1000, maxParallel: 2 };
    const prepared = await followPrepare(await client.workflow.start('PrepareDataset', {
      taskQueue: TASK_QUEUE, workflowId: 'demo-prepare', args: [prepareInput], workflowIdConflictPolicy: 'USE_EXISTING',
    }));
    console.log(`prepare: ${Object.entries(prepared.manifest.splits).map(([name, s]) => `${name} ${s.images} images in ${s.shards} shards`).join(', ')} (${prepared.shardsReused} shards reused) [${elapsed(t0)}]`);

    // 3. TrainAlexNet: one workflow id for the demo's run. A second `npm run demo` attaches
    // to it while it runs (it resumes from its last checkpoint) or reads its result.
    const trainInput: TrainAlexNetInput = {
      store, datasetName: DATASET, model: 'alexnet-32', epochs, batchSize: 128, seed: 0, checkpointEvery: 100,
      // The paper's LR 0.01, divided by 10 for the last 30% of the epochs (the paper divides
      // when the validation error stops improving; at 0.01 it was still creeping down at
      // epoch 11 of 14, and the drop was worth 1.6 points).
      lrPolicy: { type: 'step', initialLr: 0.01, factor: 0.1, everyEpochs: Math.max(1, Math.round(0.7 * epochs)), maxReductions: 1 },
      runId: RUN,
      ...(precision === 'bf16' ? { precision } : {}),
    };
    let trainHandle;
    try {
      trainHandle = await client.workflow.start('TrainAlexNet', {
        taskQueue: TASK_QUEUE, workflowId: RUN, args: [trainInput],
        workflowIdConflictPolicy: 'USE_EXISTING', workflowIdReusePolicy: 'REJECT_DUPLICATE',
      });
    } catch (e) {
      if (!(e instanceof WorkflowExecutionAlreadyStartedError)) throw e;
      console.log(`train: ${RUN} already ran; using its result (delete ${dir} to train again)`);
      trainHandle = client.workflow.getHandle(RUN);
    }
    const trained = await followTraining(trainHandle);
    const v = trained.lastValidation;
    console.log(`train: ${trained.epochs} epochs (stopped by: ${trained.stoppedBy}); centre-crop ${v?.split ?? 'val'} top-1 error ${v ? (v.top1Error * 100).toFixed(2) : '?'}% [${elapsed(t0)}]`);

    // 4. EvaluateAlexNet: the paper's test, ten patches per image, softmax averaged.
    const evalInput: EvaluateAlexNetInput = { store, checkpoint: { run: RUN }, datasetName: DATASET, split: 'test', crops: 10, maxParallel: 2 };
    const evaluated = await followEvaluation(await client.workflow.start('EvaluateAlexNet', {
      taskQueue: TASK_QUEUE, workflowId: 'demo-evaluate', args: [evalInput], workflowIdConflictPolicy: 'USE_EXISTING',
    }));

    // 5. The report, copied out of the store so a browser can open it.
    const reportDir = path.join(dir, 'report');
    fs.mkdirSync(reportDir, { recursive: true });
    const s = openStore(store);
    for (const key of Object.values(evaluated.reportKeys)) fs.writeFileSync(path.join(reportDir, path.basename(key)), await s.get(key));
    console.log('');
    console.log(`Fashion-MNIST test set, alexnet-32, 10-crop: top-1 accuracy ${(evaluated.top1Accuracy * 100).toFixed(2)}%, top-5 accuracy ${(evaluated.top5Accuracy * 100).toFixed(2)}% (${evaluated.images} images)`);
    console.log(`report: ${path.join(reportDir, 'report.html')} (also report.md, report.json; in the store: ${store}/${path.dirname(evaluated.reportKeys.json)}/)`);

    // 6. alexnet serve on the trained run, in this process: a few test JPEGs through POST /v1/classify.
    await classifyThroughServe(store, images, 5);
    console.log(`demo finished in ${elapsed(t0)}`);
  } finally {
    if (!interrupted) await cleanup();
  }
}

// Starts alexnet serve's server on the demo's run (a free port), posts the first `count`
// test JPEGs (Fashion-MNIST's test order: mixed classes) to /v1/classify?top=3, prints each
// file, its true class (its folder) and the answer, and stops the server.
async function classifyThroughServe(store: string, images: string, count: number): Promise<void> {
  const test = path.join(images, 'test');
  const files = fs.readdirSync(test, { recursive: true }).map(String).filter((f) => f.endsWith('.jpg'))
    .sort((a, b) => path.basename(a).localeCompare(path.basename(b))).slice(0, count);
  const server = await startServer({ store, run: RUN, port: 0, reloadSeconds: 0, log: () => undefined });
  try {
    await server.ready;
    console.log(`serve: ${server.url}, ${server.model()!.checkpoint.key}; POST /v1/classify?top=3:`);
    for (const file of files) {
      const res = await fetch(`${server.url}/v1/classify?top=3`, { method: 'POST', body: fs.readFileSync(path.join(test, file)), headers: { 'Content-Type': 'image/jpeg' } });
      const answer = await res.json() as { top?: { class: string; probability: number }[]; ms?: number; error?: string };
      if (!res.ok || !answer.top) throw new Error(`serve answered ${res.status} for ${file}: ${answer.error ?? ''}`);
      const top = answer.top.map((p) => `${p.class} ${(p.probability * 100).toFixed(1)}%`).join(', ');
      console.log(`  test/${file}  true ${path.dirname(file)}  ->  ${top}  (${answer.ms} ms)`);
    }
  } finally {
    await server.close();
  }
}

run().catch((err: Error) => {
  console.error(`demo failed: ${err.message}`);
  process.exit(1);
});
