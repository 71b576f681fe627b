// onnxruntime-node as the peer of our inference: loaded only by the benchmarks that compare
// with it (a development dependency: every other command runs from a production install),
// timed the same way wherever it is compared.
import { ONNX_INPUT } from '../../native/onnx';
import { percentile } from './numbers';

export type Ort = typeof import('onnxruntime-node');
export type OrtSession = Awaited<ReturnType<Ort['InferenceSession']['create']>>;

export async function loadOnnxruntime(command: string): Promise<Ort> {
  try {
    return await import('onnxruntime-node');
  } catch (e) {
    throw new Error(`${command} compares with onnxruntime-node, a development dependency: run npm install (not npm ci --omit=dev) (${(e as Error).message.split('\n')[0]})`);
  }
}

// A CPU session of an ONNX model on `threads` intra-op threads, every graph optimisation on.
export function cpuSession(ort: Ort, model: Uint8Array, threads: number): Promise<OrtSession> {
  return ort.InferenceSession.create(model, { executionProviders: ['cpu'], intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all' });
}

// Runs the feeds round-robin for at least `seconds` (and 3 runs) after 2 warm-up runs:
// images/s over the time spent in run(), and the median run in ms.
export async function timeSession(session: OrtSession, feeds: InstanceType<Ort['Tensor']>[], seconds: number): Promise<{ img_s: number; p50_ms: number }> {
  const size = feeds[0].dims[0];
  for (let i = 0; i < 2; i++) await session.run({ [ONNX_INPUT]: feeds[i % feeds.length] });
  const times: number[] = [];
  const start = performance.now();
  for (let i = 0; performance.now() - start < seconds * 1000 || times.length < 3; i++) {
    const t = performance.now();
    await session.run({ [ONNX_INPUT]: feeds[i % feeds.length] });
    times.push(performance.now() - t);
  }
  return { img_s: (times.length * size) / (times.reduce((a, b) => a + b) / 1000), p50_ms: percentile(times, 0.5) };
}
