// alexnet bench --pipeline: what orchestration through Temporal costs a training epoch.
// The same epoch (same run state, data, seed) is trained twice in this process: once by
// calling the trainEpoch activity directly (the peer: no Temporal at all), once through
// TrainAlexNet on a local dev server with a worker in this process (scheduling,
// heartbeats, checkpoints to the store, the workflow's validation and metrics).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime } from '@temporalio/worker';

import * as activities from '../../activities';
import { importFashionMnist } from '../importers/fashion-mnist';
import { startTemporal } from '../../infra/services';
import type { EpochResult, TrainEpochInput } from '../../common/contract';
import type { TrainResult } from '../../common/contract';
import { startInProcessWorker } from '../in-process-worker';

export interface PipelineBenchResult {
  model: string;
  batch: number;
  batches: number;
  direct: { epoch_s: number; native_s: number; img_s: number };
  temporal: { epoch_s: number; native_s: number; img_s: number; workflow_s: number };
  epoch_overhead_pct: number;   // (temporal epoch - direct epoch) / direct epoch
  outside_native_pct: number;   // through Temporal: share of the epoch outside the native augment + step
}

const seconds = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e9;

export async function benchPipeline(options: { images: number; model: string; batch: number; checkpointEvery: number; log: (s: string) => void }): Promise<PipelineBenchResult> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'alexnet-bench-pipeline-'));
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const temporal = await startTemporal({ dir: path.join(dir, 'temporal') });
  const taskQueue = 'bench-pipeline';
  const inProcess = await startInProcessWorker(temporal.address, taskQueue);
  const client = inProcess.client;
  try {
    const images = path.join(dir, 'fashion');
    options.log(`importing ${options.images} Fashion-MNIST training images and preparing them (36x36)...`);
    await importFashionMnist(images, { limit: options.images });
    const store = path.join(dir, 'store');
    await client.workflow.execute('PrepareDataset', { taskQueue, workflowId: 'bench-prepare', args: [{ dataset: images, store, name: 'fashion', imageSize: 36 }] });

    options.log('the epoch called directly (no Temporal)...');
    await activities.initRun({ runId: 'direct', store, model: options.model, classes: 10, seed: 0 });
    const input: TrainEpochInput = {
      runId: 'direct', store, dataset: 'fashion', trainSplit: 'train', epoch: 0, lr: 0.01, batchSize: options.batch, seed: 0,
      crop: 32, pcaSigma: 0.1, checkpointEvery: options.checkpointEvery, stallBatches: 1_000_000,
    };
    const direct = await new MockActivityEnvironment().run(activities.trainEpoch, input) as EpochResult;

    options.log('the same epoch through TrainAlexNet on the dev server...');
    const t0 = process.hrtime.bigint();
    const handle = await client.workflow.start('TrainAlexNet', {
      taskQueue, workflowId: 'via-temporal',
      args: [{ store, datasetName: 'fashion', model: options.model, epochs: 1, batchSize: options.batch, seed: 0, checkpointEvery: options.checkpointEvery, lrPolicy: { type: 'fixed', lr: 0.01 }, stallBatches: 1_000_000 }],
    });
    await handle.result() as TrainResult;
    const workflowSeconds = seconds(t0);
    // The trainEpoch activity's own result, from the history: scheduled -> completed.
    const events = (await handle.fetchHistory()).events ?? [];
    const scheduled = events.find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'trainEpoch');
    const completed = events.find((e) => e.activityTaskCompletedEventAttributes && Number(e.activityTaskCompletedEventAttributes.scheduledEventId) === Number(scheduled?.eventId));
    const time = (e: typeof scheduled) => Number(e!.eventTime!.seconds) + Number(e!.eventTime!.nanos ?? 0) / 1e9;
    const epochSeconds = time(completed) - time(scheduled);
    const payload = completed!.activityTaskCompletedEventAttributes!.result!.payloads![0];
    const viaTemporal = JSON.parse(Buffer.from(payload.data!).toString()) as EpochResult;
    const imagesTrained = direct.batches * options.batch;
    return {
      model: options.model, batch: options.batch, batches: direct.batches,
      direct: { epoch_s: direct.seconds, native_s: direct.nativeSeconds, img_s: imagesTrained / direct.seconds },
      temporal: { epoch_s: epochSeconds, native_s: viaTemporal.nativeSeconds, img_s: imagesTrained / epochSeconds, workflow_s: workflowSeconds },
      epoch_overhead_pct: (100 * (epochSeconds - direct.seconds)) / direct.seconds,
      outside_native_pct: (100 * (epochSeconds - viaTemporal.nativeSeconds)) / epochSeconds,
    };
  } finally {
    await inProcess.stop();
    await temporal.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
