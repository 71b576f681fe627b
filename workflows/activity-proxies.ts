// The activity proxies the workflows share. Every one lists NON_RETRYABLE_ERROR_TYPES:
// retrying a malformed URI, a corrupt state or an unreadable layout cannot help.
import { proxyActivities, type ActivityOptions } from '@temporalio/workflow';

import type * as activities from '../activities';
import { GPU_TASK_QUEUE, NON_RETRYABLE_ERROR_TYPES } from '../common/contract';

// Activities on the workflow's own queue (alexnet): planning, reports, bookkeeping. A
// heartbeatTimeout only for activities that heartbeat (a long listing, a merge).
export function cpuActivities(options: Pick<ActivityOptions, 'startToCloseTimeout' | 'heartbeatTimeout'>) {
  return proxyActivities<typeof activities>({ ...options, retry: { maximumAttempts: 5, nonRetryableErrorTypes: NON_RETRYABLE_ERROR_TYPES } });
}

// One shard of a fan-out (evaluation, batch classification) on the CPU workers or, for
// device cuda, the GPU workers' queue (alexnet-gpu); heartbeated, retried quickly.
export function shardActivities(device: 'cpu' | 'cuda') {
  return proxyActivities<typeof activities>({
    ...(device === 'cuda' ? { taskQueue: GPU_TASK_QUEUE } : {}),
    startToCloseTimeout: '2 hours',
    heartbeatTimeout: '2 minutes',
    retry: { maximumAttempts: 10, initialInterval: '1 second', nonRetryableErrorTypes: NON_RETRYABLE_ERROR_TYPES },
  });
}
