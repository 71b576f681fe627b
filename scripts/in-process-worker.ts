// A worker in this process (all workflows and activities, the options `alexnet worker`
// uses) plus a client on the same server: for the demo, benchmarks, the history
// recorder and tests.
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';

import * as activities from '../activities';
import { WORKFLOWS_PATH } from './paths';
import { WORKER_TUNING } from './worker-options';

export interface InProcessWorker {
  client: Client;
  worker: Worker;
  stop(): Promise<void>;
}

// activityOverrides null: a worker of workflows only (it polls no activity tasks).
export async function startInProcessWorker(address: string, taskQueue: string, activityOverrides: Partial<typeof activities> | null = {}): Promise<InProcessWorker> {
  const nativeConnection = await NativeConnection.connect({ address });
  const worker = await Worker.create({
    connection: nativeConnection, taskQueue, ...(activityOverrides ? { activities: { ...activities, ...activityOverrides } } : {}), ...WORKER_TUNING,
    workflowsPath: WORKFLOWS_PATH,
  });
  const running = worker.run();
  const client = new Client({ connection: await Connection.connect({ address }) });
  return {
    client,
    worker,
    stop: async () => {
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await running.catch(() => undefined);
      await client.connection.close();
      await nativeConnection.close();
    },
  };
}
