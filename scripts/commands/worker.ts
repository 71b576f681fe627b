// alexnet worker: a Temporal worker on task queue `alexnet` running the workflows and the
// CPU activities. Stops gracefully on SIGINT/SIGTERM (running activities get a grace time).
// With a Worker Deployment and build id it is a versioned worker (Worker Versioning).
import { NativeConnection, Runtime, Worker } from '@temporalio/worker';

import * as activities from '../../activities';
import { requestWorkerStop } from '../../activities/activity-context';
import { sizeDecodeThreadpool } from '../../activities/decode-image';
import { GPU_TASK_QUEUE, TASK_QUEUE } from '../../common/contract';
import { WORKFLOWS_PATH } from '../paths';
import { BUILD_ID_ENV, versioningOptions, WORKER_DEPLOYMENT_ENV, WORKER_TUNING, workerVersion } from '../worker-options';
import { CONNECTION_FLAGS, CONNECTION_HELP, connectionSettings } from '../temporal-connection';
import { parse } from './args';

const HELP = `usage: alexnet worker [--task-queue ${TASK_QUEUE}] [--gpu] [--deployment NAME --build-id ID] [connection flags]

--gpu: a training worker on ${GPU_TASK_QUEUE}: one training activity at a time (one per
device group), no workflows.
--deployment, --build-id (else ${WORKER_DEPLOYMENT_ENV}, ${BUILD_ID_ENV}): a versioned
worker of that Worker Deployment and build: it serves the runs pinned to its build, and
new runs once \`temporal worker deployment set-current-version\` makes the build current.

${CONNECTION_HELP}`;

export async function worker(argv: string[]): Promise<void> {
  sizeDecodeThreadpool();  // before anything uses libuv's pool
  const o = parse(argv, { ...CONNECTION_FLAGS, 'task-queue': { type: 'string' }, gpu: { type: 'boolean' },
    deployment: { type: 'string' }, 'build-id': { type: 'string' } }, HELP);
  const taskQueue = o['task-queue'] ?? (o.gpu ? GPU_TASK_QUEUE : TASK_QUEUE);
  const settings = connectionSettings(o);
  const version = workerVersion(o);
  Runtime.install({ shutdownSignals: [] });
  const connection = await NativeConnection.connect(settings.options);
  try {
    const w = await Worker.create({
      connection,
      namespace: settings.namespace,
      taskQueue,
      ...(o.gpu
        ? { maxConcurrentActivityTaskExecutions: 1 }
        : { workflowsPath: WORKFLOWS_PATH }),
      activities,
      ...WORKER_TUNING,
      ...versioningOptions(version),
    });
    const versionNote = version ? `, Worker Deployment ${version.deploymentName} build ${version.buildId}` : '';
    console.log(`alexnet worker: task queue ${taskQueue} on ${settings.describe}${versionNote}`);
    // Our own signal handling (the Runtime's is off, below): a running epoch checkpoints
    // at its next batch and hands over to another worker, then the worker drains.
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.once(signal, () => {
        console.log(`alexnet worker: ${signal}: checkpointing running epochs and stopping`);
        requestWorkerStop();
        w.shutdown();
      });
    }
    await w.run();
  } finally {
    await connection.close();
  }
}
