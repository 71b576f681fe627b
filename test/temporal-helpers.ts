// Test helpers that talk to Temporal: a worker with all our workflows and activities
// running in this process, plus a client, on a given server and task queue
// (scripts/in-process-worker.ts), and state comparison.
import * as path from 'path';
import type { Client } from '@temporalio/client';

import { importFashionMnist } from '../activities/fashion-mnist';
import { startTemporal, TemporalService } from '../infra/services';
import type { PrepareDatasetResult } from '../workflows/shared';
import { InProcessWorker, startInProcessWorker } from '../scripts/in-process-worker';
import { tmpDir } from './helpers';

export type TestWorker = InProcessWorker;
export const startTestWorker = startInProcessWorker;

// The tensor bytes of a safetensors file, without its header (whose metadata names the
// attempt that wrote it): equal for bitwise-identical network states.
export function tensorBytes(buf: Buffer): Buffer {
  return buf.subarray(8 + Number(buf.readBigUInt64LE(0)));
}

// The fixture of the training tests: a dev server, an in-process worker on `queue`, and
// 640 real Fashion-MNIST images per split prepared at 36x36 as dataset 'fashion' in a
// local store (train, the val carved out of it, test; `images` counts each split).
// stop() stops the worker and the server.
export interface TrainingFixture {
  temporal: TemporalService; worker: TestWorker; client: Client; store: string;
  images: { train: number; val: number; test: number };
  stop(): Promise<void>;
}

export async function startTrainingFixture(prefix: string, queue: string): Promise<TrainingFixture> {
  const dir = tmpDir(prefix);
  const temporal = await startTemporal({ dir: path.join(dir, 'temporal') });
  const worker = await startTestWorker(temporal.address, queue);
  const images = path.join(dir, 'fashion');
  await importFashionMnist(images, { limit: 640 });
  const store = path.join(dir, 'store');
  const prepared: PrepareDatasetResult = await worker.client.workflow.execute('PrepareDataset', { taskQueue: queue, workflowId: `${prefix}prepare`, args: [{ dataset: images, store, name: 'fashion', imageSize: 36, shardSize: 200 }] });
  const { train, val, test } = prepared.manifest.splits;
  return {
    temporal, worker, client: worker.client, store,
    images: { train: train.images, val: val.images, test: test.images },
    stop: async () => {
      await worker.stop();
      await temporal.stop();
    },
  };
}
