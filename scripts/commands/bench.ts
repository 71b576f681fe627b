// alexnet bench: training-step and inference images/s of a model on the CPU backend,
// median of several iterations after a warm-up; --compare-torch measures PyTorch on the
// same machine in the same run (scripts/torch_bench.py).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { buildInfo, Network } from '../../native/index';
import { lastJsonLine, runPython } from '../python';
import { intOption, parse, resolveModel } from './args';

const HELP = `usage: alexnet bench [--model alexnet] [--batch 128] [--threads N] [--iters 3] [--compare-torch] [--json]

With --json the last line is one JSON object:
  {"backend","model","batch","threads","train_img_s","infer_img_s"[, "pytorch": {...}]}`;

interface BenchResult { backend: string; model: string; batch: number; threads: number; train_img_s: number; infer_img_s: number }

const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];

export async function bench(argv: string[]): Promise<void> {
  const o = parse(argv, {
    model: { type: 'string' }, batch: { type: 'string' }, threads: { type: 'string' }, iters: { type: 'string' },
    'compare-torch': { type: 'boolean' }, json: { type: 'boolean' },
  }, HELP);
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

const round = (x: number) => Math.round(x * 100) / 100;
