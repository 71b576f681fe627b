// --create-bucket against a real MinIO: a command that writes to a store whose bucket is
// missing fails before doing anything and says to pass --create-bucket; with it the bucket
// is created (once: a second run finds it). `import imagenet --store` writes from the CLI
// itself; `prepare --detach` creates the bucket and then starts the workflow on a real
// Temporal dev server (no worker runs it: the test only looks at the start).
import test from 'ava';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { HeadBucketCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { Client, Connection, WorkflowNotFoundError } from '@temporalio/client';

import { minioAwsEnv, MinioService, startMinio, startTemporal, TemporalService } from '../infra/services';
import { CLI, tmpDir } from './helpers';

let minio: MinioService;
let temporal: TemporalService;
let env: NodeJS.ProcessEnv;
let s3: S3Client;
let images: string;

test.before(async () => {
  const dir = tmpDir('alexnet-cli-bucket-');
  [temporal, minio] = await Promise.all([startTemporal({ dir: path.join(dir, 'temporal') }), startMinio({ dir: path.join(dir, 'minio') })]);
  // What `alexnet up` tells a user to export (path style follows from the endpoint).
  env = { ...process.env, TEMPORAL_ADDRESS: temporal.address, ...minioAwsEnv(minio) };
  s3 = new S3Client({ endpoint: minio.endpoint, region: minio.region, forcePathStyle: true,
    credentials: { accessKeyId: minio.accessKeyId, secretAccessKey: minio.secretAccessKey } });
  // Class folders: listing goes by file name, so the bytes need not be images.
  images = path.join(dir, 'images');
  for (const cls of ['cat', 'dog']) {
    fs.mkdirSync(path.join(images, cls), { recursive: true });
    for (let i = 0; i < 3; i++) fs.writeFileSync(path.join(images, cls, `${i}.jpg`), 'not really a jpeg');
  }
});

test.after.always(async () => {
  s3?.destroy();
  await Promise.all([temporal?.stop(), minio?.stop()]);
});

function alexnet(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env, timeout: 120_000 });
  return { status: r.status ?? 1, stdout: r.stdout, stderr: r.stderr };
}

async function bucketExists(bucket: string): Promise<boolean> {
  try {
    await s3.send(new HeadBucketCommand({ Bucket: bucket }));
    return true;
  } catch (e) {
    if ((e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return false;
    throw e;
  }
}

test.serial('import imagenet --store s3://...: a missing bucket says --create-bucket; with it the bucket is made, once', async (t) => {
  const args = ['import', 'imagenet', '--source', images, '--store', 's3://fresh-import/x', '--name', 'pets'];
  let r = alexnet(...args);
  t.is(r.status, 1, r.stderr);
  t.regex(r.stderr, /bucket 'fresh-import' does not exist at http:\/\/127\.0\.0\.1:\d+; pass --create-bucket to create it/);
  t.false(await bucketExists('fresh-import'));

  r = alexnet(...args, '--create-bucket');
  t.is(r.status, 0, r.stderr);
  t.regex(r.stderr, /created bucket 'fresh-import' at http:\/\/127\.0\.0\.1:\d+/);
  t.true(await bucketExists('fresh-import'));
  const listed = await s3.send(new ListObjectsV2Command({ Bucket: 'fresh-import', Prefix: 'x/datasets/pets/' }));
  t.true((listed.KeyCount ?? 0) > 0, 'the listing was written into the new bucket');

  r = alexnet(...args, '--create-bucket');
  t.is(r.status, 0, r.stderr);
  t.notRegex(r.stderr, /created bucket/);
});

test.serial('prepare --create-bucket --detach: the bucket, then the workflow; without the flag nothing starts', async (t) => {
  const base = ['prepare', '--dataset', images, '--store', 's3://fresh-prepare/p', '--image-size', '32', '--task-queue', 'cli-bucket-no-worker', '--detach'];
  const connection = await Connection.connect({ address: temporal.address });
  t.teardown(() => connection.close());
  const client = new Client({ connection });

  let r = alexnet(...base, '--id', 'cli-bucket-missing');
  t.is(r.status, 1, r.stderr);
  t.regex(r.stderr, /^alexnet: NoSuchBucket: s3:\/\/fresh-prepare\/p: bucket 'fresh-prepare' does not exist at .*; pass --create-bucket/m);
  t.false(await bucketExists('fresh-prepare'));
  await t.throwsAsync(client.workflow.getHandle('cli-bucket-missing').describe(), { instanceOf: WorkflowNotFoundError });

  r = alexnet(...base, '--id', 'cli-bucket-made', '--create-bucket');
  t.is(r.status, 0, r.stderr);
  t.deepEqual(JSON.parse(r.stdout.trim().split('\n').pop()!), { workflowId: 'cli-bucket-made' });
  t.true(await bucketExists('fresh-prepare'));
  const handle = client.workflow.getHandle('cli-bucket-made');
  t.is((await handle.describe()).type, 'PrepareDataset');
  await handle.terminate('test done');
});
