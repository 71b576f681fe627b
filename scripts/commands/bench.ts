// alexnet bench: the network's speed on the CPU backend (scripts/bench/network.ts) or, with
// a mode flag, of preprocessing, checkpoints, the pipeline or the server (scripts/bench/).
import { buildInfo } from '../../native/index';
import { oneOf } from '../../common/validate';
import { intOption, parse, resolveModel } from './args';

const HELP = `usage: alexnet bench [--model alexnet] [--batch 128] [--threads N] [--iters 3] [--precision fp32|bf16] [--compare-torch] [--compare-onnxruntime] [--json]
       alexnet bench --preprocess [--images 200] [--size 256] [--rounds 5] [--json]
       alexnet bench --checkpoint [--model alexnet] [--rounds 3] [--stages] [--json]
       alexnet bench --pipeline [--images 12800] [--model alexnet-32] [--batch 128] [--json]
       alexnet bench --serve [--model alexnet] [--batch 32] [--threads N] [--json]
       alexnet bench --preemption [--images 6000] [--epochs 3] [--batch 64] [--every 4] [--kills 20] [--heartbeat 4] [--json]

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
--preemption trains alexnet-32 on Fashion-MNIST twice on worker processes: untouched, and
with its worker SIGKILLed each time a new checkpoint lands (--kills times); it reports the
seconds lost per kill, the attempts, bitwise equality of the two ends, and the checkpoint
bytes kept by keepAll against the default retention (scripts/bench/preemption.ts).

Without a mode: training-step and inference images/s (median of --iters after a warm-up),
batch-1 latency, and per layer the forward and backward time, GFLOP/s and share of this
machine's roof (measured first: register FMAs and a large SGEMM on the same threads).
--compare-torch runs PyTorch on the same architecture, --compare-onnxruntime runs
onnxruntime-node on our ONNX export of it (batch and batch 1, fp32), both in the same run.
--precision bf16: our GEMMs take bf16 inputs (AVX512_BF16 where the CPU has it; the network
line says), and PyTorch runs under bf16 autocast.

With --json the last line is one JSON object:
  {"backend","device","precision","model","batch","threads","train_img_s","infer_img_s","batch1_ms","peak",
   "step_gflop_per_image","train_gflops","layers":[...][, "pytorch"][, "onnxruntime"]}`;


export async function bench(argv: string[]): Promise<void> {
  const o = parse(argv, {
    model: { type: 'string' }, batch: { type: 'string' }, threads: { type: 'string' }, iters: { type: 'string' },
    'compare-torch': { type: 'boolean' }, 'compare-onnxruntime': { type: 'boolean' }, json: { type: 'boolean' }, precision: { type: 'string' },
    preprocess: { type: 'boolean' }, images: { type: 'string' }, size: { type: 'string' }, rounds: { type: 'string' }, checkpoint: { type: 'boolean' },
    pipeline: { type: 'boolean' }, stages: { type: 'boolean' }, serve: { type: 'boolean' },
    preemption: { type: 'boolean' }, epochs: { type: 'string' }, every: { type: 'string' }, kills: { type: 'string' }, heartbeat: { type: 'string' },
  }, HELP);
  if (o.preemption) {
    return (await import('../bench/preemption')).benchPreemption({
      images: intOption(o.images, 'images', 6000), epochs: intOption(o.epochs, 'epochs', 3), batch: intOption(o.batch, 'batch', 64),
      checkpointEvery: intOption(o.every, 'every', 4), kills: intOption(o.kills, 'kills', 20), heartbeatTimeoutSeconds: intOption(o.heartbeat, 'heartbeat', 4), json: !!o.json,
    });
  }
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
  const log = (line: string) => (o.json ? process.stderr : process.stdout).write(line + '\n');
  // Loaded only here, like the other benchmarks: it pulls in the ONNX export and the Python bridge.
  const { benchNetwork } = await import('../bench/network');
  const result = await benchNetwork({
    model, config: resolveModel(model), batch: intOption(o.batch, 'batch', 128), iters: intOption(o.iters, 'iters', 3),
    threads: intOption(o.threads, 'threads', buildInfo().defaultThreads), precision: oneOf('--precision', o.precision ?? 'fp32', ['fp32', 'bf16'] as const), compareTorch: !!o['compare-torch'], compareOnnxruntime: !!o['compare-onnxruntime'], log,
  });
  if (o.json) console.log(JSON.stringify(result));
}

