// Test helpers that start the real services: MinIO as an S3 store (with the AWS
// environment a deployment would have), a worker with all our workflows and activities
// running in this process plus a client, on a given server and task queue
// (scripts/in-process-worker.ts), the fixture of services, worker and a prepared
// Fashion-MNIST data set, and state comparison.
import * as path from 'path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import type { Client } from '@temporalio/client';

import { importFashionMnist } from '../scripts/importers/fashion-mnist';
import { MinioService, startMinio, startTemporal, TemporalService, useMinioCredentials } from '../infra/services';
import type { PrepareDatasetResult } from '../common/contract';
import { InProcessWorker, startInProcessWorker } from '../scripts/in-process-worker';
import { tmpDir } from './helpers';

export type TestWorker = InProcessWorker;
export const startTestWorker = startInProcessWorker;

export { tensorBytes } from '../native/safetensors';

// MinIO on `dir` with an empty bucket, and this process's environment set as a
// deployment's would be for the S3 store (which reads credentials only from the standard
// chain), by useMinioCredentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION and
// AWS_ENDPOINT_URL (path style follows from it); AWS_PROFILE, AWS_SESSION_TOKEN,
// AWS_ENDPOINT_URL_S3 and ALEXNET_S3_FORCE_PATH_STYLE, which would override them, are
// removed. Child processes inherit it all. `minio` is the
// running server: restart() stops it and starts a new one on the same folder and port
// (same data, same credentials), after `pauseMs` down.
export interface S3Fixture {
  readonly minio: MinioService;
  bucket: string;
  uri: string;  // s3://<bucket>
  restart(pauseMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startS3(bucket: string, dir = tmpDir('alexnet-minio-')): Promise<S3Fixture> {
  let minio = await startMinio({ dir });
  useMinioCredentials(minio);
  // A plain SDK client, not the store under test.
  const s3 = new S3Client({ endpoint: minio.endpoint, region: minio.region, forcePathStyle: true, credentials: { accessKeyId: minio.accessKeyId, secretAccessKey: minio.secretAccessKey } });
  try {
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  } catch (e) {
    await minio.stop();
    throw e;
  } finally {
    s3.destroy();
  }
  const port = Number(new URL(minio.endpoint).port);
  return {
    get minio() { return minio; },
    bucket,
    uri: `s3://${bucket}`,
    restart: async (pauseMs = 0) => {
      await minio.stop();
      await new Promise((r) => setTimeout(r, pauseMs));
      minio = await startMinio({ dir, port });
    },
    stop: () => minio.stop(),
  };
}

// The services of the end-to-end tests, on a new temporary folder `dir`: a Temporal dev
// server, MinIO as startS3 starts it where `minio` names a bucket, and `images` real
// Fashion-MNIST images per split (default 640) imported as JPEG class folders into
// `dataset`. `store` is a local store path under dir, not yet created. stop() stops the
// servers.
export interface ServicesOptions {
  images?: number;
  minio?: string;
}

export interface ServicesFixture {
  dir: string; temporal: TemporalService; s3?: S3Fixture; dataset: string; store: string;
  stop(): Promise<void>;
}

export async function startServices(prefix: string, opts: ServicesOptions = {}): Promise<ServicesFixture> {
  const dir = tmpDir(prefix);
  const dataset = path.join(dir, 'fashion');
  const [temporal, s3, imported] = await Promise.allSettled([
    startTemporal({ dir: path.join(dir, 'temporal') }),
    opts.minio === undefined ? undefined : startS3(opts.minio, path.join(dir, 'minio')),
    importFashionMnist(dataset, { limit: opts.images ?? 640 }),
  ]);
  const stop = async () => {
    await Promise.all([temporal, s3].map((r) => (r.status === 'fulfilled' ? r.value?.stop() : undefined)));
  };
  if (temporal.status === 'fulfilled' && s3.status === 'fulfilled' && imported.status === 'fulfilled') {
    return { dir, temporal: temporal.value, s3: s3.value, dataset, store: path.join(dir, 'store'), stop };
  }
  await stop();
  throw [temporal, s3, imported].flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []))[0];
}

// The fixture of the training tests: startServices, an in-process worker on `queue` (and
// its client), and unless `prepare` is false the data set prepared by PrepareDataset as
// dataset 'fashion' in the local `store` at `imageSize` (default 36) in shards of
// `shardSize` (default 200) images: train, the val carved out of it, test; `images`
// counts each split. stop() stops the worker, then the servers.
export interface FixtureOptions extends ServicesOptions {
  imageSize?: number;
  shardSize?: number;
  prepare?: boolean;
}

export interface WorkerFixture extends ServicesFixture {
  worker: TestWorker; client: Client;
}

export interface TrainingFixture extends WorkerFixture {
  images: { train: number; val: number; test: number };
}

export async function startTrainingFixture(prefix: string, queue: string, opts: FixtureOptions & { prepare: false }): Promise<WorkerFixture>;
export async function startTrainingFixture(prefix: string, queue: string, opts?: FixtureOptions & { prepare?: true }): Promise<TrainingFixture>;
export async function startTrainingFixture(prefix: string, queue: string, opts: FixtureOptions = {}): Promise<WorkerFixture | TrainingFixture> {
  const services = await startServices(prefix, opts);
  let worker: TestWorker | undefined;
  try {
    worker = await startTestWorker(services.temporal.address, queue);
    const w = worker;
    const fixture: WorkerFixture = {
      ...services, worker: w, client: w.client,
      stop: async () => {
        await w.stop();
        await services.stop();
      },
    };
    if (opts.prepare === false) return fixture;
    const prepared: PrepareDatasetResult = await w.client.workflow.execute('PrepareDataset', {
      taskQueue: queue, workflowId: `${prefix}prepare`,
      args: [{ dataset: services.dataset, store: services.store, name: 'fashion', imageSize: opts.imageSize ?? 36, shardSize: opts.shardSize ?? 200 }],
    });
    const { train, val, test } = prepared.manifest.splits;
    return { ...fixture, images: { train: train.images, val: val.images, test: test.images } };
  } catch (e) {
    await worker?.stop();
    await services.stop();
    throw e;
  }
}
