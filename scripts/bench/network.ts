// alexnet bench (the default mode): training-step and inference images/s of a model on the
// CPU backend, median of several iterations after a warm-up; per layer, forward and
// backward time, GFLOP/s and the share of this machine's roof (a register-FMA and SGEMM
// probe at the start); batch-1 latency. --compare-torch runs PyTorch
// (scripts/torch_bench.py) and --compare-onnxruntime runs onnxruntime-node on our ONNX
// export of the same architecture (fp32), both in the same run. --precision bf16 runs ours
// with bf16 GEMM inputs and PyTorch under bf16 autocast.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { buildInfo, checkConfig, measurePeakFlops, Network, type NetConfig, type PeakFlops } from '../../native/index';
import { exportOnnx } from '../../native/onnx';
import { lastJsonLine, runPython } from '../python';
import { median, percentile, round } from './numbers';
import { cpuSession, loadOnnxruntime, timeSession } from './onnxruntime';

export interface BenchNetworkOptions {
  model: string;
  config: NetConfig;
  batch: number;
  iters: number;
  threads: number;
  precision: 'fp32' | 'bf16';  // ours, and PyTorch's autocast with --compare-torch
  compareTorch?: boolean;
  compareOnnxruntime?: boolean;
  log: (line: string) => void;
}

interface PeerResult { backend: string; train_img_s?: number; infer_img_s: number; batch1_ms?: number }

export interface LayerFigures {
  layer: string;           // conv1, relu, lrn...
  forward_ms: number;      // per call of the training step
  backward_ms: number;
  infer_ms: number;        // the inference forward (no dropout)
  gflop: number;           // forward multiply-adds x 2 for the batch (0: not counted)
  forward_gflops?: number;
  backward_gflops?: number;
}

export interface BenchNetworkResult {
  backend: 'cpu'; device: string; precision: 'fp32' | 'bf16'; model: string; batch: number; threads: number;
  train_img_s: number; infer_img_s: number; batch1_ms: number;
  peak: { fma_gflops: number; sgemm_gflops: number };
  step_gflop_per_image: number; train_gflops: number;
  layers: LayerFigures[];
  pytorch?: PeerResult;
  onnxruntime?: PeerResult;
}

// Forward FLOPs (2 per multiply-add) of each layer for one image; conv and linear only:
// the rest move memory and their time is what the table shows for them.
export function layerFlops(config: NetConfig): number[] {
  const shapes = checkConfig(config);
  let [c, h, w] = [config.input.channels, config.input.height, config.input.width];
  return config.layers.map((l, i) => {
    const [oc, oh, ow] = shapes[i];
    const flops = l.type === 'conv' ? 2 * oc * oh * ow * (c / (l.groups ?? 1)) * l.kernel * l.kernel
      : l.type === 'linear' ? 2 * l.out * c * h * w : 0;
    [c, h, w] = [oc, oh, ow];
    return flops;
  });
}

// The backward of a layer with weights costs two of its forwards (the weight and the input
// gradient), one for the first layer (nobody needs the gradient of the images).
const backwardFlops = (forward: number, index: number) => (index === 0 ? forward : 2 * forward);

const ms = (s: number) => s * 1e3;
const fixed = (x: number) => x.toFixed(x < 10 ? 2 : 1);
const pct = (gflops: number | undefined, peak: number) => (gflops === undefined ? '' : `${((100 * gflops) / peak).toFixed(0)}%`);
const pad = (s: string | number, n: number) => String(s).padStart(n);

export async function benchNetwork(o: BenchNetworkOptions): Promise<BenchNetworkResult> {
  const { batch, iters, threads, log } = o;
  log(`bench ${o.model}: batch ${batch}, ${threads} threads, ${iters} iterations after 1 warm-up (backend cpu, ${buildInfo().blas} ${buildInfo().blasCore}; ${os.cpus()[0]?.model ?? 'cpu'}, ${os.availableParallelism()} cores)`);
  const peak: PeakFlops = await measurePeakFlops(threads);
  log(`roof on ${threads} threads: register FMAs ${peak.fmaGflops.toFixed(1)} GFLOP/s, a 1536^3 SGEMM ${peak.sgemmGflops.toFixed(1)} GFLOP/s (the table's shares are of the FMA roof; ` +
    'GFLOP/s count a direct convolution\'s multiply-adds, so a layer that does fewer, by Winograd, can pass 100%)');
  const net = new Network(o.config, { seed: 1, threads, device: 'cpu', precision: o.precision });
  log(`network: ${net.device}`);
  const images = new Float32Array(batch * net.inputSize);
  for (let i = 0; i < images.length; i++) images[i] = Math.sin(i * 12.9898) * 0.5;
  const labels = Int32Array.from({ length: batch }, (_, i) => i % net.config.classes);
  const n = net.config.layers.length;
  const sums = { forward: new Float64Array(n), backward: new Float64Array(n), infer: new Float64Array(n) };
  const train: number[] = [];
  const infer: number[] = [];
  for (let it = 0; it <= iters; it++) {
    await net.resetLayerSeconds();
    let t0 = performance.now();
    await net.step(images, labels, { lr: 0.01 });
    const tTrain = (performance.now() - t0) / 1000;
    const stepLayers = await net.layerSeconds();
    await net.resetLayerSeconds();
    t0 = performance.now();
    await net.predict(images);
    const tInfer = (performance.now() - t0) / 1000;
    const inferLayers = await net.layerSeconds();
    if (it > 0) {
      train.push(batch / tTrain);
      infer.push(batch / tInfer);
      for (let i = 0; i < n; i++) {
        sums.forward[i] += stepLayers.forward[i] / iters;
        sums.backward[i] += stepLayers.backward[i] / iters;
        sums.infer[i] += inferLayers.forward[i] / iters;
      }
    }
    log(`  ${it === 0 ? 'warm-up' : `iter ${it}`}: train ${(batch / tTrain).toFixed(1)} img/s, infer ${(batch / tInfer).toFixed(1)} img/s`);
  }
  // Batch-1 latency, as a server answering one request sees it.
  const one = images.subarray(0, net.inputSize);
  for (let i = 0; i < 2; i++) await net.predict(one);
  const latencies: number[] = [];
  for (let i = 0; i < Math.max(5, 2 * iters); i++) {
    const t0 = performance.now();
    await net.predict(one);
    latencies.push(performance.now() - t0);
  }

  const flops = layerFlops(net.config);
  const layers: LayerFigures[] = net.config.layers.map((l, i) => {
    const gflop = (flops[i] * batch) / 1e9;
    return {
      layer: 'name' in l ? l.name : l.type, forward_ms: round(ms(sums.forward[i]), 3), backward_ms: round(ms(sums.backward[i]), 3), infer_ms: round(ms(sums.infer[i]), 3), gflop: round(gflop, 4),
      ...(gflop > 0 ? { forward_gflops: round(gflop / sums.forward[i], 1), backward_gflops: round(backwardFlops(gflop, i) / sums.backward[i], 1) } : {}),
    };
  });
  const stepFlops = flops.reduce((a, f, i) => a + f + backwardFlops(f, i), 0);
  const result: BenchNetworkResult = {
    backend: 'cpu', device: net.device, precision: o.precision, model: o.model, batch, threads, train_img_s: round(median(train)), infer_img_s: round(median(infer)), batch1_ms: round(percentile(latencies, 0.5), 3),
    peak: { fma_gflops: round(peak.fmaGflops, 1), sgemm_gflops: round(peak.sgemmGflops, 1) },
    step_gflop_per_image: round(stepFlops / 1e9, 4), train_gflops: round((stepFlops * median(train)) / 1e9, 1), layers,
  };

  const roof = peak.fmaGflops;
  log('');
  log(`${'layer'.padEnd(8)}${pad('fwd ms', 9)}${pad('GFLOP/s', 9)}${pad('roof', 6)}${pad('bwd ms', 9)}${pad('GFLOP/s', 9)}${pad('roof', 6)}${pad('infer ms', 10)}`);
  for (const l of layers) {
    log(`${l.layer.padEnd(8)}${pad(fixed(l.forward_ms), 9)}${pad(l.forward_gflops?.toFixed(1) ?? '', 9)}${pad(pct(l.forward_gflops, roof), 6)}` +
      `${pad(fixed(l.backward_ms), 9)}${pad(l.backward_gflops?.toFixed(1) ?? '', 9)}${pad(pct(l.backward_gflops, roof), 6)}${pad(fixed(l.infer_ms), 10)}`);
  }
  const total = (k: 'forward_ms' | 'backward_ms' | 'infer_ms') => layers.reduce((a, l) => a + l[k], 0);
  log(`${'layers'.padEnd(8)}${pad(fixed(total('forward_ms')), 9)}${pad('', 15)}${pad(fixed(total('backward_ms')), 9)}${pad('', 15)}${pad(fixed(total('infer_ms')), 10)}`);
  log(`step: ${result.step_gflop_per_image} GFLOP per image, ${result.train_gflops} GFLOP/s (${pct(result.train_gflops, roof)} of the FMA roof, ${pct(result.train_gflops, peak.sgemmGflops)} of the SGEMM's); the rest of a step is the loss and the update`);
  log(`ours:        train ${result.train_img_s} img/s, infer ${result.infer_img_s} img/s, batch-1 latency ${result.batch1_ms} ms`);

  if (o.compareTorch) {
    const cfgFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'alexnet-bench-')), 'config.json');
    fs.writeFileSync(cfgFile, JSON.stringify(net.config));
    const r = runPython('torch_bench.py', ['--config', cfgFile, '--batch', String(batch), '--threads', String(threads), '--iters', String(iters), ...(o.precision === 'bf16' ? ['--bf16'] : [])]);
    if (r.status !== 0) throw new Error(`PyTorch benchmark failed:\n${r.stderr}`);
    const peer = lastJsonLine<PeerResult & { train_img_s: number }>(r.stdout);
    result.pytorch = { backend: peer.backend, train_img_s: round(peer.train_img_s), infer_img_s: round(peer.infer_img_s) };
    log(`${peer.backend}: train ${result.pytorch.train_img_s} img/s, infer ${result.pytorch.infer_img_s} img/s`);
    log(`  ratio:     train x${(result.train_img_s / peer.train_img_s).toFixed(2)}, infer x${(result.infer_img_s / peer.infer_img_s).toFixed(2)}`);
  }
  if (o.compareOnnxruntime) {
    const ort = await loadOnnxruntime('bench --compare-onnxruntime');
    const session = await cpuSession(ort, exportOnnx(net), threads);
    const dims = [net.config.input.channels, net.config.input.height, net.config.input.width];
    const feed = (size: number) => new ort.Tensor('float32', images.slice(0, size * net.inputSize), [size, ...dims]);
    const seconds = Math.max(2, iters);
    const big = await timeSession(session, [feed(batch)], seconds);
    const single = await timeSession(session, [feed(1)], seconds);
    result.onnxruntime = { backend: `onnxruntime-node ${ort.env.versions.node ?? ''} (cpu, fp32, our ONNX export)`, infer_img_s: round(big.img_s), batch1_ms: round(single.p50_ms, 3) };
    log(`onnxruntime: infer ${result.onnxruntime.infer_img_s} img/s, batch-1 latency ${result.onnxruntime.batch1_ms} ms`);
    log(`  ratio:     infer x${(result.infer_img_s / big.img_s).toFixed(2)}, batch-1 latency x${(result.batch1_ms / single.p50_ms).toFixed(2)} (below 1: ours answers sooner)`);
  }
  return result;
}
