// alexnet bench: training-step and inference images/s of a model on the CPU backend,
// median of several iterations after a warm-up; --compare-torch measures PyTorch on the
// same machine in the same run (scripts/torch_bench.py).
import { execFile, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { DECODE_CONCURRENCY, decodeThreads } from '../../activities/decode-image';
import { buildInfo, Network } from '../../native/index';
import { lastJsonLine, PYTHON, REPO_ROOT, runPython } from '../python';
import { intOption, parse, resolveModel } from './args';

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

const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];

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
    const { benchPipeline } = await import('../bench-pipeline').catch((e: Error) => {
      throw new Error(`bench --pipeline needs the development dependencies (run npm install, not npm ci --omit=dev): ${e.message.split('\n')[0]}`);
    });
    const r = await benchPipeline({ images: intOption(o.images, 'images', 12800), model: o.model ?? 'alexnet-32', batch: intOption(o.batch, 'batch', 128), checkpointEvery: 100, log });
    log(`${r.model}, batch ${r.batch}, ${r.batches} batches: direct ${r.direct.epoch_s.toFixed(1)} s (${r.direct.img_s.toFixed(0)} img/s); through Temporal ${r.temporal.epoch_s.toFixed(1)} s (${r.temporal.img_s.toFixed(0)} img/s), overhead against direct ${r.epoch_overhead_pct.toFixed(2)}%, outside the native step ${r.outside_native_pct.toFixed(2)}%; whole workflow with validation ${r.temporal.workflow_s.toFixed(1)} s`);
    if (o.json) console.log(JSON.stringify(r));
    return;
  }
  if (o.checkpoint) return benchCheckpoint(o.model ?? 'alexnet', intOption(o.rounds, 'rounds', 3), !!o.stages, !!o.json);
  if (o.preprocess) return benchPreprocess(intOption(o.images, 'images', 200), intOption(o.size, 'size', 256), intOption(o.rounds, 'rounds', 5), !!o.json);
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

interface PreprocessRun { images: number; seconds: number; cpu_seconds: number }

// The CPUs this process may run on (its affinity list, e.g. "0-3,8"), or undefined where
// taskset is missing (not Linux): then processes are not pinned and the report says so.
function allowedCpus(): number[] | undefined {
  const r = spawnSync('taskset', ['-pc', String(process.pid)], { encoding: 'utf8' });
  const list = r.status === 0 ? /:\s*([\d,-]+)\s*$/.exec(r.stdout)?.[1] : undefined;
  if (!list) return undefined;
  return list.split(',').flatMap((part) => {
    const [a, b = a] = part.split('-').map(Number);
    return Array.from({ length: b - a + 1 }, (_, i) => a + i);
  });
}

// Preprocessing of ImageNet-sized JPEGs, ours beside Pillow in the same run. "Per core"
// means what it says: each process is pinned to its own core (taskset), so a process's
// threads cannot spread over idle cores, and thread migration on an idle machine does not
// count against either side. Rounds alternate the contenders and each keeps its best, so
// a noisy neighbour slows both alike. The last row is ours as a worker runs it: one
// process, unpinned, all cores, the threadpool sized by the worker's own rule.
async function benchPreprocess(images: number, size: number, rounds: number, json: boolean): Promise<void> {
  const log = (s: string) => (json ? process.stderr : process.stdout).write(s + '\n');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'alexnet-preprocess-'));
  const files = await makeJpegs(dir, images);
  const cpus = allowedCpus();
  const cores = Math.min(2, cpus?.length ?? os.availableParallelism());
  log(`bench --preprocess: ${images} JPEGs of 500x375 -> ${size}x${size} RGB (shorter side to ${size}, centre crop); ` +
    (cpus ? `each process pinned to one core (cpus ${cpus.slice(0, cores).join(', ')})` : 'taskset missing: processes NOT pinned'));
  const ours = path.join(REPO_ROOT, 'dist', 'scripts', 'preprocess-bench-worker.js');
  const pillowScript = path.join(REPO_ROOT, 'scripts', 'pillow_preprocess_bench.py');
  const pythonEnv = { ...process.env, PYTHONPATH: path.join(REPO_ROOT, '.cache', 'pylib') };
  type Command = [string, string[], NodeJS.ProcessEnv];
  const pin = (p: number, [exe, args, env]: Command): Command => (cpus ? ['taskset', ['-c', String(cpus[p]), exe, ...args], env] : [exe, args, env]);
  const part = <T>(v: T[], p: number, n: number) => v.filter((_, i) => i % n === p);
  // n processes at once, each on every n-th image; throughput = images / the slowest.
  const runProcesses = async (n: number, command: (p: number) => Command): Promise<PreprocessRun> => {
    const runs = await Promise.all(Array.from({ length: n }, (_, p) => new Promise<PreprocessRun>((resolve, reject) => {
      const [exe, args, env] = command(p);
      execFile(exe, args, { env }, (err, stdout, stderr) => (err ? reject(new Error(`${exe} ${args.slice(0, 3).join(' ')} failed: ${stderr}`)) : resolve(lastJsonLine(stdout))));
    })));
    return { images: runs.reduce((a, r) => a + r.images, 0), seconds: Math.max(...runs.map((r) => r.seconds)), cpu_seconds: runs.reduce((a, r) => a + r.cpu_seconds, 0) };
  };
  // One libuv thread and one libvips thread per pinned process: exactly one core's worth.
  const oursOn = (kernel: string, n: number) => (p: number) => pin(p, [process.execPath, [ours, String(size), '3', kernel, '2', ...part(files, p, n)], { ...process.env, UV_THREADPOOL_SIZE: '1' }]);
  const pillowOn = (resample: string, n: number) => (p: number) => pin(p, [PYTHON, [pillowScript, dir, '--size', String(size), '--repeat', '3', '--resample', resample, '--part', `${p}/${n}`], pythonEnv]);
  const oursWorker = (): Command => [process.execPath, [ours, String(size), '3', 'lanczos3', String(DECODE_CONCURRENCY), ...files], { ...process.env, UV_THREADPOOL_SIZE: String(decodeThreads()) }];
  // Each of our kernels beside Pillow's filter of the same family: lanczos3 (our default)
  // with LANCZOS, linear with BILINEAR (what torchvision's Resize does).
  const pairs = [['lanczos3', 'lanczos'], ['linear', 'bilinear']] as const;
  const processCounts = [1, cores].filter((n, i, a) => a.indexOf(n) === i);
  const contenders: [string, number, (p: number) => Command][] = [];
  for (const n of processCounts) {
    for (const [kernel, resample] of pairs) contenders.push([`ours_${kernel}_${n}`, n, oursOn(kernel, n)], [`pillow_${resample}_${n}`, n, pillowOn(resample, n)]);
  }
  contenders.push(['ours_worker', 1, oursWorker]);
  const best: Record<string, PreprocessRun> = {};
  for (let round = 0; round < rounds; round++) {
    for (const [name, n, command] of contenders) {
      const r = await runProcesses(n, command);
      if (!best[name] || r.seconds < best[name].seconds) best[name] = r;
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
  const imgS = (name: string) => best[name].images / best[name].seconds;
  const cpuImgS = (name: string) => best[name].images / best[name].cpu_seconds;
  for (const n of processCounts) {
    const per = n === 1 ? '1 process on 1 core' : `${n} processes on ${n} cores`;
    log(per + ': ' + pairs.map(([kernel, resample]) => `ours ${kernel} ${imgS(`ours_${kernel}_${n}`).toFixed(1)} img/s vs pillow ${resample} ${imgS(`pillow_${resample}_${n}`).toFixed(1)} (x${(imgS(`ours_${kernel}_${n}`) / imgS(`pillow_${resample}_${n}`)).toFixed(2)})`).join('; '));
  }
  if (cores > 1) {
    log(`scaling 1 -> ${cores} processes: ` + pairs.map(([kernel, resample]) => `ours ${kernel} x${(imgS(`ours_${kernel}_${cores}`) / imgS(`ours_${kernel}_1`)).toFixed(2)}, pillow ${resample} x${(imgS(`pillow_${resample}_${cores}`) / imgS(`pillow_${resample}_1`)).toFixed(2)}`).join('; '));
  }
  log(`one worker process, unpinned, ${os.availableParallelism()} cores, ${decodeThreads()} decode threads, ${DECODE_CONCURRENCY} images in flight: ours lanczos3 ${imgS('ours_worker').toFixed(1)} img/s (${cpuImgS('ours_worker').toFixed(1)} per CPU-second; pinned single processes: ${cpuImgS('ours_lanczos3_1').toFixed(1)})`);
  if (json) {
    console.log(JSON.stringify({
      backend: 'sharp', images, size, pinned: !!cpus, cores,
      ...Object.fromEntries(Object.keys(best).map((k) => [`${k}_img_s`, round(imgS(k))])),
      ...Object.fromEntries(Object.keys(best).map((k) => [`${k}_img_per_cpu_s`, round(cpuImgS(k))])),
    }));
  }
}

// Checkpoint throughput on MinIO: our saveCheckpoint/loadNewestCheckpoint (sha256 and
// put from the network's memory, then latest.json; latest.json, list, then the object
// streamed into a new network, its sha256 checked on the way) against a raw PutObject
// and GetObject of the same bytes (the SDK's defaults: CRC32 on both).
async function benchCheckpoint(model: string, rounds: number, stages: boolean, json: boolean): Promise<void> {
  const { startMinio } = await import('../../infra/services');
  const { S3Client, CreateBucketCommand, PutObjectCommand, GetObjectCommand } = await import('@aws-sdk/client-s3');
  const { openStore } = await import('../../activities/store');
  const { saveCheckpoint, loadNewestCheckpoint } = await import('../../activities/checkpoint');
  const { encodeState, encodeStateParts, readStateNetwork } = await import('../../native/state');
  const { decodeSafetensors } = await import('../../native/safetensors');
  const { createHash } = await import('crypto');
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
    // Ours and raw alternate, round after round, and each keeps its best time: a load that
    // drifts during the run (other processes on the machine) weighs on both alike.
    const best: Record<string, number> = {};
    const time = async (name: string, f: () => Promise<unknown>) => {
      const t0 = process.hrtime.bigint();
      await f();
      best[name] = Math.min(best[name] ?? Infinity, Number(process.hrtime.bigint() - t0) / 1e9);
    };
    const drain = async (s: AsyncIterable<unknown>) => { for await (const chunk of s) void chunk; };  // the transfer alone
    const { dataStart } = decodeSafetensors(bytes);
    let batch = 0;
    for (let i = 0; i < rounds; i++) {
      await time('ours_save', () => saveCheckpoint(store, 'bench', net, { epoch: 0, batch: batch++ }, { attempt: 1, lr: 0.01 }));
      await time('raw_put', () => s3.send(new PutObjectCommand({ Bucket: 'bench', Key: 'raw.bin', Body: bytes })));
      await time('ours_load', () => loadNewestCheckpoint(store, 'bench'));
      await time('raw_get', async () => (await s3.send(new GetObjectCommand({ Bucket: 'bench', Key: 'raw.bin' }))).Body!.transformToByteArray());
      if (!stages) continue;
      // Each step of ours on its own (saveCheckpoint and loadNewestCheckpoint do them in turn).
      let parts: Buffer[] = [];
      await time('save_encode_sha256', async () => { parts = encodeStateParts(net); });
      await time('save_put', () => store.put('stages.safetensors', parts));
      await time('load_get_transfer', async () => drain(await store.getStream('stages.safetensors', { verify: false })));
      await time('load_new_network_no_init', async () => new Network(net.config, { init: false }));
      await time('load_new_network_random_init', async () => new Network(net.config));
      await time('load_sha256', async () => createHash('sha256').update(bytes.subarray(dataStart)).digest());
      await time('load_read_state_network', async () => readStateNetwork(await store.getStream('stages.safetensors', { verify: false }), 'stages'));
    }
    s3.destroy();
    const rate = (name: string) => mb / best[name];
    log(`checkpoint of ${model}: ${mb.toFixed(0)} MB, best of ${rounds} rounds`);
    log(`save: ours ${rate('ours_save').toFixed(0)} MB/s, raw PutObject ${rate('raw_put').toFixed(0)} MB/s (ours/raw ${(rate('ours_save') / rate('raw_put')).toFixed(2)})`);
    log(`load: ours ${rate('ours_load').toFixed(0)} MB/s, raw GetObject ${rate('raw_get').toFixed(0)} MB/s (ours/raw ${(rate('ours_load') / rate('raw_get')).toFixed(2)})`);
    const ms = (name: string) => (best[name] * 1000).toFixed(0);
    if (stages) {
      log(`stages (ms): save = encode with sha256 ${ms('save_encode_sha256')} + put (CRC32, streamed PutObject) ${ms('save_put')}; ` +
        `load = GET transfer ${ms('load_get_transfer')}, new Network without init ${ms('load_new_network_no_init')} (with random init ${ms('load_new_network_random_init')}), ` +
        `sha256 ${ms('load_sha256')}; readStateNetwork in all ${ms('load_read_state_network')}`);
    }
    const r = { ours_save_mb_s: rate('ours_save'), raw_put_mb_s: rate('raw_put'), ours_load_mb_s: rate('ours_load'), raw_get_mb_s: rate('raw_get') };
    const stageMs = stages ? { stages_ms: Object.fromEntries(Object.keys(best).filter((k) => !(k in { ours_save: 1, raw_put: 1, ours_load: 1, raw_get: 1 })).map((k) => [k, round(best[k] * 1000)])) } : {};
    if (json) console.log(JSON.stringify({ model, mb: round(mb), rounds, ...Object.fromEntries(Object.entries(r).map(([k, v]) => [k, round(v)])), ...stageMs }));
  } finally {
    await minio.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
