// Activity helpers that also work outside an activity (unit tests, CLI runs): heartbeat
// and cancellation become no-ops there.
import { Context } from '@temporalio/activity';

function current(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

export function heartbeat(details?: unknown): void {
  current()?.heartbeat(details);
}

// Throws the activity's cancellation (a CancelledFailure) if it was cancelled.
export function throwIfCancelled(): void {
  const ctx = current();
  if (ctx?.cancellationSignal.aborted) throw ctx.cancellationSignal.reason;
}

export function heartbeatDetails<T>(): T | undefined {
  return current()?.info.heartbeatDetails as T | undefined;
}

// The workflow that scheduled the running activity (undefined outside an activity).
export function activityWorkflowId(): string | undefined {
  return current()?.info.workflowExecution?.workflowId;
}

// The attempt number of the running activity (1 outside an activity).
export function activityAttempt(): number {
  return current()?.info.attempt ?? 1;
}

export function cancellationSignal(): AbortSignal | undefined {
  return current()?.cancellationSignal;
}

// The cancellation came from an operator's `temporal activity pause`, not the workflow:
// the attempt checkpoints and ends, and the server holds the next one until unpause.
export function pausedByOperator(): boolean {
  return current()?.cancellationDetails?.paused ?? false;
}

// Signals the workflow that scheduled this activity (best effort: a failure is logged,
// never thrown, since the activity's own outcome matters more).
export async function signalOwnWorkflow(name: string, arg: unknown): Promise<void> {
  const ctx = current();
  const workflowId = ctx?.info.workflowExecution?.workflowId;
  if (!ctx || !workflowId) return;
  try {
    await ctx.client.workflow.getHandle(workflowId).signal(name, arg);
  } catch (e) {
    ctx.log.warn(`could not signal ${name} to the workflow: ${(e as Error).message}`);
  }
}

// Set when this worker process is asked to stop (SIGTERM, SIGINT): long activities then
// checkpoint at their next safe point and fail retryably, so the server hands the rest to
// another worker at once instead of waiting out the shutdown grace time.
let stopping = false;

export function requestWorkerStop(): void {
  stopping = true;
}

export function workerStopping(): boolean {
  return stopping;
}
