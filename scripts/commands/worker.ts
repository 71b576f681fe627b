// alexnet worker: a Temporal worker on task queue `alexnet` running the workflows and the
// CPU activities. Stops gracefully on SIGINT/SIGTERM (running activities get a grace time).
import * as path from 'path';

import { NativeConnection, Worker } from '@temporalio/worker';

import * as activities from '../../activities';
import { TASK_QUEUE } from '../../workflows/shared';
import { CONNECTION_FLAGS, CONNECTION_HELP, connectionSettings } from '../temporal-connection';
import { parse } from './args';

const HELP = `usage: alexnet worker [--task-queue ${TASK_QUEUE}] [connection flags]

${CONNECTION_HELP}`;

export async function worker(argv: string[]): Promise<void> {
  const o = parse(argv, { ...CONNECTION_FLAGS, 'task-queue': { type: 'string' } }, HELP);
  const settings = connectionSettings(o);
  const connection = await NativeConnection.connect(settings.options);
  try {
    const w = await Worker.create({
      connection,
      namespace: settings.namespace,
      taskQueue: o['task-queue'] ?? TASK_QUEUE,
      workflowsPath: path.resolve(__dirname, '..', '..', 'workflows', 'index.js'),
      activities,
      shutdownGraceTime: '30 seconds',
    });
    console.log(`alexnet worker: task queue ${o['task-queue'] ?? TASK_QUEUE} on ${settings.describe}`);
    await w.run();
  } finally {
    await connection.close();
  }
}
