// Following a running workflow from a client: a progress bar fed by the workflow's
// `progress` query (and, for training, the running epoch's heartbeat), then the result,
// or the workflow's own failure message. Used by `alexnet prepare|train|eval|classify-batch` and the demo.
// Progress bars render on a terminal; elsewhere (CI, a pipe) a line every `logEvery` ms.
import { WorkflowFailedError, WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { Presets, SingleBar } from 'cli-progress';

import type { EvaluateProgress, PrepareProgress, TrainResult } from '../common/contract';
import type { EvaluateAlexNetResult, PrepareDatasetResult, TrainProgress } from '../common/contract';
import type { ClassifyImagesResult, ClassifyProgress } from '../common/contract';

interface Tick { value: number; total: number; fields: Record<string, string | number> }

// A progress poll's calls get this long (retries included): while no worker runs, the
// server holds a query for 30 s before giving up, and we wait for the poll in flight
// before returning (see below).
const POLL_DEADLINE_MS = 10_000;

// Every promise settled, then the first rejection (if any) thrown: unlike Promise.all, no
// call is left running behind a failed one, so the connection can be closed afterwards.
export async function settleAll<T extends readonly unknown[]>(promises: { [K in keyof T]: Promise<T[K]> }): Promise<T> {
  const settled = await Promise.allSettled(promises);
  for (const s of settled) if (s.status === 'rejected') throw s.reason;
  return Promise.all(promises);  // all fulfilled: their values, typed as T
}

// One poll's calls, under a deadline and cancellable by `signal` when the connection
// offers that (a real handle; the tests' fake one has no client).
function bounded<T>(handle: WorkflowHandle, signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
  const connection = (handle as Partial<WorkflowHandle>).client?.connection;
  if (!connection) return fn();
  return connection.withAbortSignal(signal, () => connection.withDeadline(Date.now() + POLL_DEADLINE_MS, fn));
}

// Follows until the result, then returns only once nothing it started is outstanding:
// the caller closes the connection next, and a call still running then (or its gRPC
// retry timer: the client retries e.g. RESOURCE_EXHAUSTED with a backoff of up to 5 s,
// and Connection.close() does not clear that timer) would throw "Channel has been shut
// down" out of a timer, uncaught, after the summary was printed. So: one poll at a time
// (the next is scheduled when the last has settled; overlapping queries to a workflow no
// worker has picked up yet overflow the server's query buffer, hence those retries), and
// at the end no new poll, the one in flight cancelled and awaited.
async function follow<R>(handle: WorkflowHandle, what: string, format: string, tick: () => Promise<Tick>, options: { pollMs?: number; logEvery?: number } = {}): Promise<R> {
  const tty = !!process.stderr.isTTY;
  const bar = new SingleBar({ format: `${what} [{bar}] ${format}`, stream: process.stderr, noTTYOutput: !tty, notTTYSchedule: options.logEvery ?? 30_000 }, Presets.shades_classic);
  let started = false;
  let done = false;
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<void> = Promise.resolve();
  let cancel = new AbortController();  // one per poll: the connection adds a listener per call
  const poll = () => {
    cancel = new AbortController();
    inFlight = bounded(handle, cancel.signal, tick).then((t) => {
      // A query answered after the result must not start the bar: its redraw timer would
      // keep the process alive for ever.
      if (done) return;
      if (!started) {
        bar.start(Math.max(1, t.total), t.value, t.fields);
        started = true;
      }
      bar.setTotal(Math.max(1, t.total));
      bar.update(t.value, t.fields);
    }, () => undefined)  // not started yet, or finished: the result says how it ended
      .finally(() => {
        if (!done) timer = setTimeout(poll, options.pollMs ?? 1000);
      });
  };
  timer = setTimeout(poll, options.pollMs ?? 1000);
  try {
    return await handle.result() as R;
  } catch (e) {
    if (e instanceof WorkflowFailedError) throw new Error(`${what} ${handle.workflowId} failed: ${e.cause?.message ?? e.message}`);
    throw e;
  } finally {
    done = true;
    clearTimeout(timer);
    cancel.abort();
    await inFlight;
    if (started) bar.stop();
  }
}

export function followPrepare(handle: WorkflowHandle): Promise<PrepareDatasetResult> {
  return follow(handle, 'prepare', '{value}/{total} shards | {images} images | {skipped} skipped | {phase}', async () => {
    const p = await handle.query<PrepareProgress>('progress');
    return { value: p.shardsDone, total: p.shardsTotal, fields: { images: p.imagesDone, skipped: p.skipped, phase: p.phase } };
  });
}

// The running trainEpoch's last heartbeat ({epoch, batch, checkpoint}), if any.
export async function currentBatch(handle: WorkflowHandle): Promise<{ epoch: number; batch: number } | undefined> {
  const d = await handle.describe();
  for (const a of d.raw.pendingActivities ?? []) {
    const p = a.heartbeatDetails?.payloads?.[0];
    if (a.activityType?.name === 'trainEpoch' && p) return defaultPayloadConverter.fromPayload(p as never);
  }
  return undefined;
}

export function followTraining(handle: WorkflowHandle): Promise<TrainResult> {
  let batchesPerEpoch = 0;
  return follow(handle, 'train', 'epoch {epoch}/{epochs} batch {batch} | lr {lr} | loss {loss} | val top-1 err {top1} | {rate} img/s | {phase}', async () => {
    const [p, cur] = await settleAll<[TrainProgress, Awaited<ReturnType<typeof currentBatch>>]>([handle.query<TrainProgress>('progress'), currentBatch(handle)]);
    if (p.lastEpoch) batchesPerEpoch = p.lastEpoch.batches;
    return {
      value: cur?.batch ?? 0, total: batchesPerEpoch || (cur?.batch ?? 0) + 1,
      fields: {
        epoch: p.epoch + 1, epochs: p.epochs, batch: cur?.batch ?? '-', lr: p.lr, phase: p.phase,
        loss: p.lastEpoch ? p.lastEpoch.meanLoss.toFixed(3) : '-', top1: p.lastValidation ? p.lastValidation.top1Error.toFixed(3) : '-',
        rate: p.lastEpoch ? p.lastEpoch.imagesPerSecond.toFixed(0) : '-',
      },
    };
  }, { pollMs: 2000 });
}

export function followEvaluation(handle: WorkflowHandle): Promise<EvaluateAlexNetResult> {
  return follow(handle, 'evaluate', '{value}/{total} shards | {images} images | {phase}', async () => {
    const p = await handle.query<EvaluateProgress>('progress');
    return { value: p.shardsDone, total: p.shardsTotal, fields: { images: p.imagesDone, phase: p.phase } };
  });
}

export function followClassification(handle: WorkflowHandle): Promise<ClassifyImagesResult> {
  return follow(handle, 'classify', '{value}/{total} shards | {images}/{listed} images | {skipped} skipped | {phase}', async () => {
    const p = await handle.query<ClassifyProgress>('progress');
    return { value: p.shardsDone, total: p.shardsTotal, fields: { images: p.imagesDone, listed: p.listed, skipped: p.skipped, phase: p.phase } };
  });
}
