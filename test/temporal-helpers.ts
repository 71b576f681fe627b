// Test helpers that talk to Temporal: a worker with all our workflows and activities
// running in this process, plus a client, on a given server and task queue.
import * as path from 'path';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';

import * as activities from '../activities';
import { WORKER_TUNING } from '../scripts/worker-options';

export interface TestWorker {
  client: Client;
  stop(): Promise<void>;
}

export async function startTestWorker(address: string, taskQueue: string): Promise<TestWorker> {
  const nativeConnection = await NativeConnection.connect({ address });
  const worker = await Worker.create({
    connection: nativeConnection, taskQueue, activities, ...WORKER_TUNING,
    workflowsPath: path.resolve(__dirname, '..', 'workflows', 'index.js'),
  });
  const running = worker.run();
  const client = new Client({ connection: await Connection.connect({ address }) });
  return {
    client,
    stop: async () => {
      worker.shutdown();
      await running.catch(() => undefined);
      await client.connection.close();
      await nativeConnection.close();
    },
  };
}

// The tensor bytes of a safetensors file, without its header (whose metadata names the
// attempt that wrote it): equal for bitwise-identical network states.
export function tensorBytes(buf: Buffer): Buffer {
  return buf.subarray(8 + Number(buf.readBigUInt64LE(0)));
}
