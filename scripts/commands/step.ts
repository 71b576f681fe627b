// alexnet step: the PyTorch parity hook. One forward, backward and SGD step (from zero
// momentum) on safetensors weights and input; writes everything needed to compare.
import { Network, NetConfig } from '../../native/index';
import { decodeState, loadStateInto } from '../../native/state';
import { encodeSafetensors, Tensor, tensor } from '../../native/safetensors';
import { intOption, numberOption, parse, readSafetensorsFile, required, resolveModel, UsageError, writeFileAtomic } from './args';

const HELP = `usage: alexnet step --model <name|config.json> --weights W.safetensors --input X.safetensors --out O.safetensors
                    [--lr 0.01] [--no-dropout] [--seed S] [--threads N]

W: float32 <layer>.weight / <layer>.bias (conv1..conv5, fc6..fc8; PyTorch layouts).
   Momentum in W is ignored (the step starts from zero momentum); rng.state, if present,
   fixes the dropout draw (else --seed, default 0).
X: images float32 [N,C,H,W], labels int64 or int32 [N].
O: logits [N,classes], loss [1], grad.<param> for every parameter, the updated <param>,
   and mask.<layer> (the dropout multipliers, 0 or 1/(1-p)) unless --no-dropout.
--model may be omitted when W carries a config in its metadata (alexnet init writes one).`;

export async function step(argv: string[]): Promise<void> {
  const o = parse(argv, {
    model: { type: 'string' }, weights: { type: 'string' }, input: { type: 'string' }, out: { type: 'string' },
    lr: { type: 'string' }, 'no-dropout': { type: 'boolean' }, seed: { type: 'string' }, threads: { type: 'string' },
  }, HELP);
  const weightsPath = required(o.weights, 'weights', HELP);
  const w = readSafetensorsFile(weightsPath, 'weights');
  const state = decodeState(w.buf, `--weights ${weightsPath}`);
  let config: NetConfig;
  if (o.model !== undefined) config = resolveModel(o.model);
  else if (state.config) config = state.config;
  else throw new UsageError(`--weights ${weightsPath} carries no config: pass --model\n\n${HELP}`);

  const threads = o.threads === undefined ? undefined : intOption(o.threads, 'threads', 0);
  const net = new Network(config, { seed: intOption(o.seed, 'seed', 0, 0), threads });
  loadStateInto(net, state, `--weights ${weightsPath}`);
  for (const p of net.params) net.momentum(p.name).fill(0);

  const inputPath = required(o.input, 'input', HELP);
  const x = readSafetensorsFile(inputPath, 'input').file;
  const images = x.tensors.get('images');
  const labels = x.tensors.get('labels');
  const { channels: c, height: h, width: wd } = net.config.input;
  if (!images || images.dtype !== 'F32' || images.shape.length !== 4 || images.shape[1] !== c || images.shape[2] !== h || images.shape[3] !== wd) {
    throw new UsageError(`--input ${inputPath}: needs 'images' float32 [N,${c},${h},${wd}] (NCHW), found ${images ? `${images.dtype} [${images.shape}]` : 'none'}`);
  }
  const n = images.shape[0];
  if (!labels || (labels.dtype !== 'I64' && labels.dtype !== 'I32') || labels.shape.join() !== String(n)) {
    throw new UsageError(`--input ${inputPath}: needs 'labels' int64 or int32 [${n}], found ${labels ? `${labels.dtype} [${labels.shape}]` : 'none'}`);
  }
  const labels32 = labels.dtype === 'I32' ? (labels.data as Int32Array) : Int32Array.from(labels.data as BigInt64Array, (v) => Number(v));

  const lr = numberOption(o.lr, 'lr', 0.01);
  const dropout = !o['no-dropout'];
  const { loss, logits } = await net.forward(images.data as Float32Array, labels32, { train: dropout });
  if (!Number.isFinite(loss)) throw new Error(`loss is ${loss}: no output written`);
  await net.backward();
  const out: Record<string, Tensor> = {
    logits: tensor('F32', [n, net.config.classes], logits),
    loss: tensor('F32', [1], Float32Array.of(loss)),
  };
  for (const p of net.params) out[`grad.${p.name}`] = tensor('F32', p.shape, net.gradient(p.name).slice());
  if (dropout) for (const m of net.dropoutMasks()) out[m.name] = tensor('F32', [m.rows, m.cols], m.data);
  await net.update({ lr });
  for (const p of net.params) out[p.name] = tensor('F32', p.shape, net.weight(p.name));
  const outPath = required(o.out, 'out', HELP);
  writeFileAtomic(outPath, encodeSafetensors(out, { lr: String(lr), dropout: String(dropout) }));
  console.log(`loss ${loss.toFixed(6)}; wrote ${outPath}`);
}
