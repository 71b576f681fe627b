// Test helpers that talk to Temporal: a worker with all our workflows and activities
// running in this process, plus a client, on a given server and task queue
// (scripts/in-process-worker.ts), and state comparison.
import { InProcessWorker, startInProcessWorker } from '../scripts/in-process-worker';

export type TestWorker = InProcessWorker;
export const startTestWorker = startInProcessWorker;

// The tensor bytes of a safetensors file, without its header (whose metadata names the
// attempt that wrote it): equal for bitwise-identical network states.
export function tensorBytes(buf: Buffer): Buffer {
  return buf.subarray(8 + Number(buf.readBigUInt64LE(0)));
}
