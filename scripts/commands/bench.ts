// alexnet bench: training-step and inference images/s of a model on the CPU backend,
// median of several iterations after a warm-up; --compare-torch measures PyTorch on the
// same machine in the same run (scripts/torch_bench.py).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { buildInfo, Network } from '../../native/index';
import { lastJsonLine, runPython } from '../python';
import { intOption, parse, resolveModel } from './args';
import { median, round } from '../bench/numbers';

const HELP = `usage: alexnet bench [--model alexnet] [--batch 128] [--threads N] [--iters 3] [--compare-torch] [--json]
       alexnet bench --preprocess [--images 200] [--size 256] [--rounds 5] [--json]
       alexnet bench --checkpoint [--model alexnet] [--rounds 3] [--stages] [--json]
       alexnet bench --pipeline [--images 12800] [--model alexnet-32] [--batch 128] [--json]
       alexnet bench --serve [--model alexnet] [--batch 32] [--threads N] [--json]

--preprocess measures JPEG preprocessing (decode, resize the shorter side to S, centre
crop) of ImageNet-sized JPEGs (500x375), ours and Pillow in the same run, each kernel
beside Pillow's filter of its family, on 1 and 2 processes each pinned to its own core;
then ours as a worker runs it (one process, all cores).
--checkpoint saves and loads the model's checkpoint (weights + momentum) through our store
on a local MinIO it starts, beside a raw PutObject/GetObject of the same bytes, the two
alternating round after round (best of each); --stages adds what each step of ours costs.
--pipeline trains one epoch of Fashion-MNIST twice in one run: the trainEpoch activity
called directly (no Temporal), and TrainAlexNet on a local dev server; it reports the
orchestration overhead (checkpoints every 100 batches in both).
--serve: alexnet serve under 1, 8 and 32 closed-loop clients posting JPEGs to /v1/classify
(images/s, p50, p99), beside onnxruntime-node at batch 1 and 32 (scripts/bench/serve.ts).

With --json the last line is one JSON object:
  {"backend","model","batch","threads","train_img_s","infer_img_s"[, "pytorch": {...}]}`;

interface BenchResult { backend: string; model: string; batch: number; threads: number; train_img_s: number; infer_img_s: number }


export async function bench(argv: string[]): Promise<void> {
  const o = parse(argv, {
    model: { type: 'string' }, batch: { type: 'string' }, threads: { type: 'string' }, iters: { type: 'string' },
    'compare-torch': { type: 'boolean' }, json: { type: 'boolean' },
    preprocess: { type: 'boolean' }, images: { type: 'string' }, size: { type: 'string' }, rounds: { type: 'string' }, checkpoint: { type: 'boolean' },
    pipeline: { type: 'boolean' }, stages: { type: 'boolean' }, serve: { type: 'boolean' },
  }, HELP);
  if (o.serve) return (await import('../bench/serve')).benchServe({ model: o.model, batch: o.batch, threads: o.threads, json: o.json });
  if (o.pipeline) {
    const log = (s: string) => (o.json ? process.stderr : process.stdout).write(s + '\n');
    // Loaded only here: it needs @temporalio/testing, a devDependency, and every other
    // command (the worker above all) must run from a production install.
    const { benchPipeline } = await import('../bench/pipeline').catch((e: Error) => {
      throw new Error(`bench --pipeline needs the development dependencies (run npm install, not npm ci --omit=dev): ${e.message.split('\n')[0]}`);
    });
    const r = await benchPipeline({ images: intOption(o.images, 'images', 12800), model: o.model ?? 'alexnet-32', batch: intOption(o.batch, 'batch', 128), checkpointEvery: 100, log });
    log(`${r.model}, batch ${r.batch}, ${r.batches} batches: direct ${r.direct.epoch_s.toFixed(1)} s (${r.direct.img_s.toFixed(0)} img/s); through Temporal ${r.temporal.epoch_s.toFixed(1)} s (${r.temporal.img_s.toFixed(0)} img/s), overhead against direct ${r.epoch_overhead_pct.toFixed(2)}%, outside the native step ${r.outside_native_pct.toFixed(2)}%; whole workflow with validation ${r.temporal.workflow_s.toFixed(1)} s`);
    if (o.json) console.log(JSON.stringify(r));
    return;
  }
  if (o.checkpoint) return (await import('../bench/checkpoint')).benchCheckpoint(o.model ?? 'alexnet', intOption(o.rounds, 'rounds', 3), !!o.stages, !!o.json);
  if (o.preprocess) return (await import('../bench/preprocess')).benchPreprocess(intOption(o.images, 'images', 200), intOption(o.size, 'size', 256), intOption(o.rounds, 'rounds', 5), !!o.json);
  const model = o.model ?? 'alexnet';
  const config = resolveModel(model);
  const batch = intOption(o.batch, 'batch', 128);
  const iters = intOption(o.iters, 'iters', 3);
  const threads = intOption(o.threads, 'threads', buildInfo().defaultThreads);
  const net = new Network(config, { seed: 1, threads });
  const images = new Float32Array(batch * net.inputSize);
  for (let i = 0; i < images.length; i++) images[i] = Math.sin(i * 12.9898) * 0.5;
  const labels = Int32Array.from({ length: batch }, (_, i) => i % net.config.classes);
  const log = (s: string) => (o.json ? process.stderr : process.stdout).write(s + '\n');
  log(`bench ${model}: batch ${batch}, ${threads} threads, ${iters} iterations after 1 warm-up (backend cpu, ${buildInfo().blas})`);
  const train: number[] = [];
  const infer: number[] = [];
  for (let it = 0; it <= iters; it++) {
    let t0 = process.hrtime.bigint();
    await net.step(images, labels, { lr: 0.01 });
    const tTrain = Number(process.hrtime.bigint() - t0) / 1e9;
    t0 = process.hrtime.bigint();
    await net.predict(images);
    const tInfer = Number(process.hrtime.bigint() - t0) / 1e9;
    if (it > 0) {
      train.push(batch / tTrain);
      infer.push(batch / tInfer);
    }
    log(`  ${it === 0 ? 'warm-up' : `iter ${it}`}: train ${(batch / tTrain).toFixed(1)} img/s, infer ${(batch / tInfer).toFixed(1)} img/s`);
  }
  const ours: BenchResult & { pytorch?: BenchResult } = {
    backend: 'cpu', model, batch, threads, train_img_s: round(median(train)), infer_img_s: round(median(infer)),
  };
  log(`ours:    train ${ours.train_img_s} img/s, infer ${ours.infer_img_s} img/s`);
  if (o['compare-torch']) {
    const cfgFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'alexnet-bench-')), 'config.json');
    fs.writeFileSync(cfgFile, JSON.stringify(net.config));
    const r = runPython('torch_bench.py', ['--config', cfgFile, '--batch', String(batch), '--threads', String(threads), '--iters', String(iters)]);
    if (r.status !== 0) throw new Error(`PyTorch benchmark failed:\n${r.stderr}`);
    const peer = lastJsonLine<BenchResult>(r.stdout);
    ours.pytorch = { ...peer, model, train_img_s: round(peer.train_img_s), infer_img_s: round(peer.infer_img_s) };
    log(`pytorch: train ${ours.pytorch.train_img_s} img/s, infer ${ours.pytorch.infer_img_s} img/s`);
    log(`ratio:   train x${(ours.train_img_s / peer.train_img_s).toFixed(2)}, infer x${(ours.infer_img_s / peer.infer_img_s).toFixed(2)}`);
  }
  if (o.json) console.log(JSON.stringify(ours));
}

