// alexnet status <workflowId>: a TrainAlexNet run's progress query, with the running
// epoch's current batch (from its heartbeat) and the worker build the run is on (Worker
// Versioning), as pretty-printed JSON.
import type { WorkflowHandle } from '@temporalio/client';
import { decodeVersioningBehavior } from '@temporalio/common';

import type { TrainProgress } from '../../common/contract';
import { currentBatch, settleAll } from '../follow';
import { CONNECTION_FLAGS, CONNECTION_HELP, connectClient } from '../temporal-connection';
import { helpFirst, parse, UsageError } from './args';

const HELP = `usage: alexnet status <workflowId> [connection flags]

Prints a TrainAlexNet run's progress (phase, epoch, learning rate, the last epoch and
validation), the running epoch's current batch, and "worker": the Worker Deployment,
build id and versioning behaviour the run is on (null for unversioned workers), as JSON.

${CONNECTION_HELP}`;

export async function status(argv: string[]): Promise<void> {
  helpFirst(argv, HELP);
  const [workflowId, ...rest] = argv;
  if (!workflowId || workflowId.startsWith('-')) throw new UsageError(HELP);
  const o = parse(rest, { ...CONNECTION_FLAGS }, HELP);
  const { client, connection } = await connectClient(o);
  try {
    const handle = client.workflow.getHandle(workflowId);
    // Both settled before the connection closes (Promise.all would leave one running).
    const [progress, current, worker] = await settleAll<[TrainProgress, Awaited<ReturnType<typeof currentBatch>>, RunWorkerVersion | null]>(
      [handle.query<TrainProgress>('progress'), currentBatch(handle), runWorkerVersion(handle)]);
    console.log(JSON.stringify({ ...progress, currentBatch: current, worker }, null, 2));
  } finally {
    await connection.close();
  }
}

export interface RunWorkerVersion { deployment: string; buildId: string; behavior: 'PINNED' | 'AUTO_UPGRADE' | 'UNSPECIFIED' }

// The build whose workers run the workflow (its last completed workflow task's), from the
// server's description; null before a versioned worker has taken it, or when unversioned.
export async function runWorkerVersion(handle: WorkflowHandle): Promise<RunWorkerVersion | null> {
  const info = (await handle.describe()).raw.workflowExecutionInfo?.versioningInfo;
  const version = info?.deploymentVersion;
  if (!version?.deploymentName || !version.buildId) return null;
  return { deployment: version.deploymentName, buildId: version.buildId, behavior: decodeVersioningBehavior(info?.behavior) ?? 'UNSPECIFIED' };
}
