// How workflows end on an activity's non-retryable failure (bad data, bad URI, NaN
// loss): with the activity's own message on top, not a generic "activity task failed".
import { ActivityFailure, ApplicationFailure } from '@temporalio/workflow';

export function surfaceCause(e: unknown): never {
  if (e instanceof ActivityFailure && e.cause instanceof ApplicationFailure && e.cause.nonRetryable) {
    throw ApplicationFailure.nonRetryable(e.cause.message, e.cause.type ?? 'ActivityFailed');
  }
  throw e;
}

// A workflow's validated input: a bad field fails the workflow at once, non-retryably
// (InvalidInput), with the validator's message naming the field.
export function validInput<T>(validate: () => T): T {
  try {
    return validate();
  } catch (e) {
    throw ApplicationFailure.nonRetryable((e as Error).message, 'InvalidInput');
  }
}
