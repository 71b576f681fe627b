// alexnet bench: training-step and inference images/s of a model on the CPU backend,
// median of several iterations after a warm-up; --compare-torch measures PyTorch on the
// same machine in the same run (scripts/torch_bench.py).
import { execFile } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { buildInfo, Network } from '../../native/index';
import { benchPipeline } from '../bench-pipeline';
import { lastJsonLine, PYTHON, REPO_ROOT, runPython } from '../python';
import { intOption, parse, resolveModel } from './args';

const HELP = `usage: alexnet bench [--model alexnet] [--batch 128] [--threads N] [--iters 3] [--compare-torch] [--json]
       alexnet bench --preprocess [--images 200] [--size 256] [--json]
       alexnet bench --checkpoint [--model alexnet] [--json]
       alexnet bench --pipeline [--images 12800] [--model alexnet-32] [--batch 128] [--json]

--preprocess measures JPEG preprocessing (decode, resize the shorter side to S, centre
crop) of ImageNet-sized JPEGs (500x375): ours on 1 and on 2 processes, and Pillow on one.
--checkpoint saves and loads the model's checkpoint (weights + momentum) through our store
on a local MinIO it starts, beside a raw PutObject/GetObject of the same bytes.
--pipeline trains one epoch of Fashion-MNIST twice in one run: the trainEpoch activity
called directly (no Temporal), and TrainAlexNet on a local dev server; it reports the
orchestration overhead (checkpoints every 100 batches in both).

With --json the last line is one JSON object:
  {"backend","model","batch","threads","train_img_s","infer_img_s"[, "pytorch": {...}]}`;

interface BenchResult { backend: string; model: string; batch: number; threads: number; train_img_s: number; infer_img_s: number }

const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];

export async function bench(argv: string[]): Promise<void> {
  const o = parse(argv, {
    model: { type: 'string' }, batch: { type: 'string' }, threads: { type: 'string' }, iters: { type: 'string' },
    'compare-torch': { type: 'boolean' }, json: { type: 'boolean' },
    preprocess: { type: 'boolean' }, images: { type: 'string' }, size: { type: 'string' }, checkpoint: { type: 'boolean' },
    pipeline: { type: 'boolean' },
  }, HELP);
  if (o.pipeline) {
    const log = (s: string) => (o.json ? process.stderr : process.stdout).write(s + '\n');
    const r = await benchPipeline({ images: intOption(o.images, 'images', 12800), model: o.model ?? 'alexnet-32', batch: intOption(o.batch, 'batch', 128), checkpointEvery: 100, log });
    log(`${r.model}, batch ${r.batch}, ${r.batches} batches: direct ${r.direct.epoch_s.toFixed(1)} s (${r.direct.img_s.toFixed(0)} img/s); through Temporal ${r.temporal.epoch_s.toFixed(1)} s (${r.temporal.img_s.toFixed(0)} img/s), overhead against direct ${r.epoch_overhead_pct.toFixed(2)}%, outside the native step ${r.outside_native_pct.toFixed(2)}%; whole workflow with validation ${r.temporal.workflow_s.toFixed(1)} s`);
    if (o.json) console.log(JSON.stringify(r));
    return;
  }
  if (o.checkpoint) return benchCheckpoint(o.model ?? 'alexnet', !!o.json);
  if (o.preprocess) return benchPreprocess(intOption(o.images, 'images', 200), intOption(o.size, 'size', 256), !!o.json);
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

// ImageNet-like test images: 500x375, smooth colour fields with texture and noise (so the
// JPEGs have realistic entropy), quality 90.
async function makeJpegs(dir: string, n: number): Promise<string[]> {
  const sharp = (await import('sharp')).default;
  const files: string[] = [];
  const w = 500, h = 375;
  for (let i = 0; i < n; i++) {
    const raw = Buffer.alloc(w * h * 3);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        for (let c = 0; c < 3; c++) {
          const v = 128 + 80 * Math.sin((x * (c + 1)) / (17 + i) + y / (23 + c)) + 30 * Math.sin(x * y * 0.001 * (i + 1)) + ((x * 7919 + y * 104729 + c * 31 + i) % 41) - 20;
          raw[(y * w + x) * 3 + c] = Math.max(0, Math.min(255, v));
        }
      }
    }
    const file = path.join(dir, `img${String(i).padStart(4, '0')}.jpg`);
    fs.writeFileSync(file, await sharp(raw, { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 90 }).toBuffer());
    files.push(file);
  }
  return files;
}

async function benchPreprocess(images: number, size: number, json: boolean): Promise<void> {
  const log = (s: string) => (json ? process.stderr : process.stdout).write(s + '\n');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'alexnet-preprocess-'));
  const files = await makeJpegs(dir, images);
  log(`bench --preprocess: ${images} JPEGs of 500x375 -> ${size}x${size} RGB (shorter side to ${size}, centre crop)`);
  const ours = path.join(REPO_ROOT, 'dist', 'scripts', 'preprocess-bench-worker.js');
  const pillowScript = path.join(REPO_ROOT, 'scripts', 'pillow_preprocess_bench.py');
  const pythonEnv = { ...process.env, PYTHONPATH: path.join(REPO_ROOT, '.cache', 'pylib') };
  // procs processes at once, each on every procs-th image; throughput = images / slowest.
  const runProcesses = async (procs: number, command: (part: number) => [string, string[], NodeJS.ProcessEnv]): Promise<number> => {
    const results = await Promise.all(Array.from({ length: procs }, (_, p) => new Promise<{ images: number; seconds: number }>((resolve, reject) => {
      const [exe, args, env] = command(p);
      execFile(exe, args, { env }, (err, stdout, stderr) => (err ? reject(new Error(`${exe} failed: ${stderr}`)) : resolve(lastJsonLine(stdout))));
    })));
    return results.reduce((a, r) => a + r.images, 0) / Math.max(...results.map((r) => r.seconds));
  };
  const oursCmd = (procs: number, kernel: string) => (p: number): [string, string[], NodeJS.ProcessEnv] =>
    [process.execPath, [ours, String(size), '3', kernel, ...files.filter((_, i) => i % procs === p)], { ...process.env, UV_THREADPOOL_SIZE: '1' }];
  const pillowCmd = (procs: number) => (p: number): [string, string[], NodeJS.ProcessEnv] =>
    [PYTHON, [pillowScript, dir, '--size', String(size), '--repeat', '3', '--part', `${p}/${procs}`], pythonEnv];
  // Ours with sharp's default lanczos3 (what PrepareDataset uses by default) and with
  // linear, the same resampling as Pillow's BILINEAR: the like-for-like comparison.
  const r: Record<string, number> = {};
  for (const procs of [1, 2]) {
    r[`ours_${procs}`] = await runProcesses(procs, oursCmd(procs, 'lanczos3'));
    r[`ours_linear_${procs}`] = await runProcesses(procs, oursCmd(procs, 'linear'));
    r[`pillow_${procs}`] = await runProcesses(procs, pillowCmd(procs));
    log(`${procs} process${procs > 1 ? 'es' : ''}: ours ${r[`ours_${procs}`].toFixed(1)} img/s (lanczos3), ${r[`ours_linear_${procs}`].toFixed(1)} img/s (linear); pillow ${r[`pillow_${procs}`].toFixed(1)} img/s (bilinear)`);
  }
  log(`scaling 1 -> 2 processes: ours x${(r.ours_2 / r.ours_1).toFixed(2)} (linear x${(r.ours_linear_2 / r.ours_linear_1).toFixed(2)}), pillow x${(r.pillow_2 / r.pillow_1).toFixed(2)}`);
  fs.rmSync(dir, { recursive: true, force: true });
  if (json) console.log(JSON.stringify({ backend: 'sharp', images, size, ours_1_process_img_s: round(r.ours_1), ours_2_processes_img_s: round(r.ours_2), ours_linear_1_process_img_s: round(r.ours_linear_1), ours_linear_2_processes_img_s: round(r.ours_linear_2), pillow_1_process_img_s: round(r.pillow_1), pillow_2_processes_img_s: round(r.pillow_2) }));
}

// Checkpoint throughput on MinIO: our saveCheckpoint/loadNewestCheckpoint (encode,
// checksum, put, then latest.json; get, verify, decode, load) against a raw PutObject and
// GetObject of the same bytes, best of 3 each.
async function benchCheckpoint(model: string, json: boolean): Promise<void> {
  const { startMinio } = await import('../../infra/services');
  const { S3Client, CreateBucketCommand, PutObjectCommand, GetObjectCommand } = await import('@aws-sdk/client-s3');
  const { openStore } = await import('../../activities/store');
  const { saveCheckpoint, loadNewestCheckpoint } = await import('../../activities/checkpoint');
  const { encodeState } = await import('../../native/state');
  const log = (s: string) => (json ? process.stderr : process.stdout).write(s + '\n');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'alexnet-ckpt-bench-'));
  const minio = await startMinio({ dir });
  try {
    Object.assign(process.env, { AWS_ACCESS_KEY_ID: minio.accessKeyId, AWS_SECRET_ACCESS_KEY: minio.secretAccessKey, AWS_REGION: minio.region, AWS_ENDPOINT_URL: minio.endpoint });
    const s3 = new S3Client({ endpoint: minio.endpoint, region: minio.region, forcePathStyle: true, credentials: { accessKeyId: minio.accessKeyId, secretAccessKey: minio.secretAccessKey } });
    await s3.send(new CreateBucketCommand({ Bucket: 'bench' }));
    const net = new Network(resolveModel(model), { seed: 1 });
    const bytes = encodeState(net);
    const mb = bytes.length / 1e6;
    const store = openStore('s3://bench/ours');
    const best = async (f: () => Promise<unknown>) => {
      let t = Infinity;
      for (let i = 0; i < 3; i++) {
        const t0 = process.hrtime.bigint();
        await f();
        t = Math.min(t, Number(process.hrtime.bigint() - t0) / 1e9);
      }
      return mb / t;
    };
    let batch = 0;
    const r = {
      ours_save_mb_s: await best(() => saveCheckpoint(store, 'bench', net, { epoch: 0, batch: batch++ }, { attempt: 1, lr: 0.01 })),
      raw_put_mb_s: await best(() => s3.send(new PutObjectCommand({ Bucket: 'bench', Key: 'raw.bin', Body: bytes }))),
      ours_load_mb_s: await best(() => loadNewestCheckpoint(store, 'bench')),
      raw_get_mb_s: await best(async () => (await s3.send(new GetObjectCommand({ Bucket: 'bench', Key: 'raw.bin' }))).Body!.transformToByteArray()),
    };
    s3.destroy();
    log(`checkpoint of ${model}: ${mb.toFixed(0)} MB`);
    log(`save: ours ${r.ours_save_mb_s.toFixed(0)} MB/s, raw PutObject ${r.raw_put_mb_s.toFixed(0)} MB/s`);
    log(`load: ours ${r.ours_load_mb_s.toFixed(0)} MB/s, raw GetObject ${r.raw_get_mb_s.toFixed(0)} MB/s`);
    if (json) console.log(JSON.stringify({ model, mb: round(mb), ...Object.fromEntries(Object.entries(r).map(([k, v]) => [k, round(v)])) }));
  } finally {
    await minio.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
