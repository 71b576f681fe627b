// The real local services from infra/: the Temporal dev server (a client connects, and a
// workflow started before a restart on the same dir is still there after it), MinIO (an
// S3 round trip with @aws-sdk/client-s3), no orphans when the owning process dies, and
// `alexnet up`/`down`. Needs the binaries of infra/install-services.sh (setup.sh runs it).
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import test from 'ava';
import { Client, Connection } from '@temporalio/client';
import { CreateBucketCommand, GetObjectCommand, HeadBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';

import { freePorts, isServiceProcess, MinioService, readMinioCredentials, startMinio, startTemporal, TemporalService } from '../infra/services';
import { alexnet, ROOT, tmpDir } from './helpers';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function gone(pid: number, name: 'temporal' | 'minio', ms = 15_000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(100)) if (!isServiceProcess(pid, name)) return true;
  return false;
}

test.serial('temporal: a client connects, and state survives a restart on the same dir', async (t) => {
  const dir = tmpDir('alexnet-temporal-', t);
  let temporal: TemporalService = await startTemporal({ dir });
  t.teardown(() => temporal.stop());
  let connection = await Connection.connect({ address: temporal.address });
  const info = await connection.workflowService.describeNamespace({ namespace: 'default' });
  t.is(info.namespaceInfo?.name, 'default');
  // No worker polls this task queue, so the execution stays RUNNING across the restart.
  const workflowId = `services-test-${process.pid}`;
  await new Client({ connection }).workflow.start('nobodyRunsThis', { taskQueue: 'no-worker', workflowId, args: [42] });
  await connection.close();

  const { pid } = temporal;
  await temporal.stop();
  t.true(await gone(pid, 'temporal'));
  temporal = await startTemporal({ dir });
  connection = await Connection.connect({ address: temporal.address });
  const client = new Client({ connection });
  const described = await client.workflow.getHandle(workflowId).describe();
  t.is(described.type, 'nobodyRunsThis');
  t.is(described.status.name, 'RUNNING');
  const listed = [];
  for await (const wf of client.workflow.list({ query: `WorkflowId = '${workflowId}'` })) listed.push(wf.workflowId);
  t.deepEqual(listed, [workflowId]);
  await connection.close();
});

test.serial('minio: bucket, put and get with the AWS SDK; the secret stays out of the log', async (t) => {
  const dir = tmpDir('alexnet-minio-', t);
  let minio: MinioService = await startMinio({ dir });
  t.teardown(() => minio.stop());
  const s3 = () => new S3Client({ endpoint: minio.endpoint, region: minio.region, forcePathStyle: true,
    credentials: { accessKeyId: minio.accessKeyId, secretAccessKey: minio.secretAccessKey } });
  await s3().send(new CreateBucketCommand({ Bucket: 'alexnet-test' }));
  await s3().send(new PutObjectCommand({ Bucket: 'alexnet-test', Key: 'a/b.txt', Body: 'hello minio' }));
  // The same dir restarts with the same keys and the object still there.
  await minio.stop();
  minio = await startMinio({ dir });
  const got = await s3().send(new GetObjectCommand({ Bucket: 'alexnet-test', Key: 'a/b.txt' }));
  t.is(await got.Body?.transformToString(), 'hello minio');
  t.is(fs.statSync(minio.credentialsFile).mode & 0o777, 0o600);
  t.false(fs.readFileSync(minio.logFile, 'utf8').includes(minio.secretAccessKey));
  t.false(JSON.stringify(minio).includes(minio.secretAccessKey));
});

test.serial('a service dies with the process that started it, even one killed by SIGKILL', async (t) => {
  const dir = tmpDir('alexnet-orphan-', t);
  const script = `require(${JSON.stringify(path.join(ROOT, 'dist', 'infra', 'services.js'))})
    .startMinio({ dir: ${JSON.stringify(dir)} }).then((m) => { console.log(m.pid); process.kill(process.pid, 'SIGKILL'); });`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000 });
  const pid = Number(r.stdout.trim());
  t.true(pid > 0, r.stderr);
  t.true(await gone(pid, 'minio'));
});

test.serial('alexnet up starts both once, down stops them, and up again keeps the state', async (t) => {
  const dir = tmpDir('alexnet-up-', t);
  const ports = ['--temporal-port', '--ui-port', '--minio-port', '--console-port'];
  const free = await freePorts(ports.length);
  const args = ['--dir', dir, ...ports.flatMap((p, i) => [p, `${free[i]}`])];
  t.teardown(() => { alexnet('down', '--dir', dir); });
  const first = alexnet('up', ...args);
  t.is(first.status, 0, first.stderr);
  const state = JSON.parse(fs.readFileSync(path.join(dir, 'services.json'), 'utf8'));
  t.true(isServiceProcess(state.temporal.pid, 'temporal') && isServiceProcess(state.minio.pid, 'minio'));
  t.regex(first.stdout, /export TEMPORAL_ADDRESS=127\.0\.0\.1:\d+ AWS_ENDPOINT_URL=http:\/\/127\.0\.0\.1:\d+/);
  t.false(first.stdout.includes(fs.readFileSync(path.join(dir, 'minio.env'), 'utf8').split('\n')[1].split('=')[1]));
  // The bucket for the store it prints, made on its MinIO with the keys it points to.
  t.regex(first.stdout, /bucket +alexnet on minio \(created\)/);
  t.regex(first.stdout, /--store s3:\/\/alexnet\/\S+/);
  const s3 = new S3Client({ endpoint: state.minio.endpoint, region: state.minio.region, forcePathStyle: true, credentials: readMinioCredentials(state.minio.credentialsFile) });
  t.teardown(() => s3.destroy());
  await t.notThrowsAsync(s3.send(new HeadBucketCommand({ Bucket: 'alexnet' })));

  const second = alexnet('up', ...args);
  t.is(second.status, 0, second.stderr);
  t.regex(second.stdout, /temporal already running[^]*minio already running[^]*bucket +alexnet on minio \(already there\)/);

  const stopped = alexnet('down', '--dir', dir);
  t.is(stopped.status, 0, stopped.stderr);
  t.true(await gone(state.temporal.pid, 'temporal', 1000) && await gone(state.minio.pid, 'minio', 1000));
  t.false(fs.existsSync(path.join(dir, 'services.json')));
  const again = alexnet('up', ...args);
  t.is(again.status, 0, again.stderr);
  t.true(fs.existsSync(path.join(dir, 'temporal.sqlite')));
});
