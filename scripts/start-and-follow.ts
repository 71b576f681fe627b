// Starting a workflow from a command and following it: the one path of `alexnet prepare`,
// `train`, `eval` and `classify-batch`. Checks the store's bucket (--create-bucket), connects, starts the
// workflow, then either prints {"workflowId"} and returns (--detach) or follows it with a
// progress bar on stderr and prints {"workflowId", ...summary} as the last stdout line;
// the connection is closed in every case. A failed workflow throws (exit 1).
import type { WorkflowHandle } from '@temporalio/client';

import {
  TASK_QUEUE, type ClassifyImagesInput, type ClassifyImagesResult, type EvaluateAlexNetInput, type EvaluateAlexNetResult,
  type PrepareDatasetInput, type PrepareDatasetResult, type TrainAlexNetInput, type TrainResult,
} from '../common/contract';
import { followClassification, followEvaluation, followPrepare, followTraining } from './follow';
import { checkStoreBucket, CREATE_BUCKET_FLAG, CREATE_BUCKET_HELP } from './store-bucket';
import { CONNECTION_FLAGS, connectClient } from './temporal-connection';
import { UsageError } from './commands/args';

// The flags every workflow-starting command takes.
export const START_FLAGS = {
  ...CONNECTION_FLAGS, ...CREATE_BUCKET_FLAG, id: { type: 'string' }, 'task-queue': { type: 'string' }, detach: { type: 'boolean' }, wait: { type: 'boolean' },
} as const;
export const START_USAGE = '[--id WORKFLOW_ID] [--task-queue alexnet] [--wait | --detach] [--create-bucket] [connection flags]';
export const START_HELP = `--id             the workflow id (default: a new one)
--task-queue     the workers' task queue (default ${TASK_QUEUE})
--detach         print {"workflowId"} once the workflow has started and return; by default
                 the command follows it to the end (progress on stderr)
--wait           follow it to the end (the default; for scripts that say so)
${CREATE_BUCKET_HELP}`;

export type StartFlags = { [K in keyof typeof START_FLAGS]?: (typeof START_FLAGS)[K]['type'] extends 'boolean' ? boolean : string };

interface Workflows {
  PrepareDataset: { input: PrepareDatasetInput; result: PrepareDatasetResult };
  TrainAlexNet: { input: TrainAlexNetInput; result: TrainResult };
  EvaluateAlexNet: { input: EvaluateAlexNetInput; result: EvaluateAlexNetResult };
  ClassifyImages: { input: ClassifyImagesInput; result: ClassifyImagesResult };
}
type WorkflowType = keyof Workflows;

const FOLLOW: { [K in WorkflowType]: (handle: WorkflowHandle) => Promise<Workflows[K]['result']> } = {
  PrepareDataset: followPrepare,
  TrainAlexNet: followTraining,
  EvaluateAlexNet: followEvaluation,
  ClassifyImages: followClassification,
};

export interface StartOptions<K extends WorkflowType> {
  workflowId: string;                    // used when --id is not given
  summary?: (result: Workflows[K]['result']) => object;  // the printed fields after workflowId (default: the result)
  startedNote?: (workflowId: string) => string;  // appended to the "started ..." line on stderr
}

export async function startAndFollow<K extends WorkflowType>(flags: StartFlags, type: K, input: Workflows[K]['input'], options: StartOptions<K>): Promise<void> {
  if (flags.wait && flags.detach) throw new UsageError('--wait and --detach contradict each other (following is the default)');
  await checkStoreBucket(input.store, !!flags['create-bucket']);
  const { client, connection, settings } = await connectClient(flags);
  try {
    const workflowId = flags.id ?? options.workflowId;
    const handle = await client.workflow.start(type, { taskQueue: flags['task-queue'] ?? TASK_QUEUE, workflowId, args: [input] });
    console.error(`started ${type} ${workflowId} on ${settings.describe}${options.startedNote?.(workflowId) ?? ''}`);
    if (flags.detach) {
      console.log(JSON.stringify({ workflowId }));
      return;
    }
    const result = await (FOLLOW[type] as (h: WorkflowHandle) => Promise<Workflows[K]['result']>)(handle);
    console.log(JSON.stringify({ workflowId, ...(options.summary ? options.summary(result) : result) }));
  } finally {
    await connection.close();
  }
}
