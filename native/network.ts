// The typed Network over the native addon. Arguments are validated here, before they reach
// C++, with messages naming them; every long operation runs on a native thread and returns
// a promise; calls on one network are queued so they never overlap; parameter tensors are
// zero-copy views of native memory.
import { ArgumentError, integerIn, invalid, numberIn, refuseUnknownFields } from '../common/validate';
import { native, type LayerSeconds, type NativeError, type NativeNetwork, type NativeSgd } from './binding';
import { checkConfig, modelConfig, type NetConfig } from './config';
import { resolveDevice, type CudaOptions, type Device, type Precision } from './device';

export interface ParamInfo { name: string; shape: number[] }
export interface SgdOptions {
  lr: number;
  momentum?: number;
  weightDecay?: number;
  // Per layer (by its config name, e.g. conv1, fc8) a factor on lr and the decay, like
  // Caffe's lr_mult: 0 freezes the layer, 10 is usual for one drawn afresh when
  // fine-tuning. Layers not named: 1.
  lrMultipliers?: Record<string, number>;
}
export interface StepOptions extends SgdOptions { dropout?: boolean }
export interface DropoutMask { name: string; rows: number; cols: number; data: Float32Array }

export const PAPER_SGD = { momentum: 0.9, weightDecay: 0.0005 } as const;

// The loss of a step was NaN or Inf: nothing was updated; the state is the last good one.
export class NonFiniteLossError extends Error {
  readonly code = 'NON_FINITE_LOSS';
  constructor(message: string) {
    super(message);
    this.name = 'NonFiniteLossError';
  }
}

function toSeed(seed: bigint | number): bigint {
  if (typeof seed === 'bigint' && seed >= 0n && seed < 1n << 64n) return seed;
  if (typeof seed === 'number' && Number.isSafeInteger(seed) && seed >= 0) return BigInt(seed);
  throw invalid('seed', 'non-negative integer below 2^64', seed);
}

export interface NetworkOptions {
  seed?: bigint | number;
  threads?: number;
  device?: Device;     // default ALEXNET_DEVICE, else 'cpu'
  // What the GEMMs take, on either device: 'fp32' (the default), 'bf16' (bf16 inputs, fp32
  // sums; on the CPU through AVX512_BF16 where it has them, else fp32) or 'tf32' (CUDA only).
  // Weights, momentum, activations and the update stay fp32. On CUDA, cuda.precision and
  // ALEXNET_CUDA_PRECISION give the default.
  precision?: Precision;
  cuda?: CudaOptions;
  // false: skip the paper's random initialisation (the weights start at zero), for a
  // network whose whole state is about to be loaded. Default true.
  init?: boolean;
}

export class Network {
  readonly config: NetConfig;
  readonly params: ParamInfo[];
  readonly inputSize: number;
  private readonly net: NativeNetwork;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(config: NetConfig | string, options: NetworkOptions = {}) {
    const cfg = typeof config === 'string' ? modelConfig(config) : config;
    checkConfig(cfg);
    const threads = options.threads === undefined ? 0 : integerIn('threads', options.threads, 1, 1024);
    const device = resolveDevice(options);
    this.net = new (native().Network)(cfg, toSeed(options.seed ?? 0), threads, device, options.init ?? true);
    this.config = this.net.config();
    this.params = this.net.params();
    this.inputSize = this.config.input.channels * this.config.input.height * this.config.input.width;
  }

  get threads(): number {
    return this.net.getThreads();
  }

  // 'cpu', or where the CUDA backend placed the network ("cuda:0 (model parallel, ...)").
  get device(): string {
    return this.net.device();
  }

  // Zero-copy views of a parameter's native memory: writes change the network. On CUDA the
  // memory is a host copy, refreshed by each call; write into a fresh view before the
  // next operation (which uploads it).
  weight(name: string): Float32Array {
    return this.net.tensor(this.paramName(name), 'value');
  }
  gradient(name: string): Float32Array {
    return this.net.tensor(this.paramName(name), 'grad');
  }
  momentum(name: string): Float32Array {
    return this.net.tensor(this.paramName(name), 'momentum');
  }

  get rngState(): { seed: bigint; counter: bigint } {
    const [seed, counter] = this.net.getRngState();
    return { seed, counter };
  }
  setRngState(seed: bigint, counter: bigint): void {
    this.net.setRngState(toSeed(seed), toSeed(counter));
  }

  // images (N, C, H, W) float32; labels (N) int32 in [0, classes). Returns the mean loss
  // (NaN without labels) and the logits (N, classes). train turns dropout on.
  forward(images: Float32Array, labels?: Int32Array, options: { train?: boolean } = {}): Promise<{ loss: number; logits: Float32Array }> {
    const n = this.batchOf(images);
    if (labels !== undefined) this.checkLabels(labels, n);
    return this.enqueue(() => this.net.forward(images, labels ?? null, n, options.train ?? false));
  }

  // Gradients of the last forward's loss into every gradient(name) view.
  backward(): Promise<void> {
    return this.enqueue(() => this.net.backward());
  }

  // The paper's update: v <- m*v - wd*lr*w - lr*grad; w <- w + v. Advances the dropout draw.
  update(options: SgdOptions): Promise<void> {
    const sgd = this.sgd(options);
    return this.enqueue(() => this.net.update(sgd));
  }

  // forward (dropout on unless dropout: false) + backward + update. A NaN/Inf loss
  // rejects with NonFiniteLossError and changes nothing.
  step(images: Float32Array, labels: Int32Array, options: StepOptions): Promise<{ loss: number }> {
    const n = this.batchOf(images);
    this.checkLabels(labels, n);
    const sgd = this.sgd(options);
    return this.enqueue(() => this.net.step(images, labels, n, sgd, options.dropout ?? true));
  }

  // Logits (N, classes) at test time: all neurons, no dropout.
  async predict(images: Float32Array): Promise<Float32Array> {
    return (await this.forward(images)).logits;
  }

  // One test-time forward (no dropout) giving the logits (N, classes) and a named layer's
  // activations, features (N, size): DeCAF's image features. The layer's output is taken
  // after the ReLU that follows it (featureLayer), so 'fc7' is DeCAF's post-ReLU fc7.
  async features(images: Float32Array, layer: string): Promise<{ logits: Float32Array; features: Float32Array; size: number }> {
    const n = this.batchOf(images);
    const index = featureLayer(this.config, layer);
    const { logits, features } = await this.enqueue(() => this.net.forward(images, null, n, false, index));
    return { logits, features: features!, size: features!.length / n };
  }

  // Seconds per layer (config order) in forward and backward since the last reset, summed
  // over calls (CPU; empty on CUDA). Queued behind the calls before it.
  layerSeconds(): Promise<LayerSeconds> {
    return this.enqueue(async () => this.net.layerSeconds());
  }
  resetLayerSeconds(): Promise<void> {
    return this.enqueue(async () => this.net.resetLayerSeconds());
  }

  // The multipliers each dropout layer applied in the last training forward.
  dropoutMasks(): DropoutMask[] {
    return this.net.dropoutMasks();
  }

  private enqueue<T>(op: () => Promise<T>): Promise<T> {
    const callSite = new Error();  // so a native failure shows the JS stack of the call
    const run = this.queue.then(op, op).catch((e: NativeError) => {
      const err = nativeError(e);
      err.stack = `${err.name}: ${err.message}\n${callSite.stack?.split('\n').slice(2).join('\n') ?? ''}`;
      throw err;
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  private paramName(name: string): string {
    if (!this.params.some((p) => p.name === name)) {
      throw invalid('name', `a parameter name (${this.params.map((p) => p.name).join(', ')})`, name);
    }
    return name;
  }

  private batchOf(images: Float32Array): number {
    const { channels: c, height: h, width: w } = this.config.input;
    if (!(images instanceof Float32Array)) throw invalid('images', 'Float32Array', images);
    if (images.length === 0 || images.length % this.inputSize !== 0) {
      throw invalid('images', `a Float32Array of N*${c}*${h}*${w} = N*${this.inputSize} values (layout N,C,H,W)`, images);
    }
    return images.length / this.inputSize;
  }

  private checkLabels(labels: Int32Array, n: number): void {
    if (!(labels instanceof Int32Array)) throw invalid('labels', 'Int32Array', labels);
    if (labels.length !== n) throw invalid('labels', `Int32Array of length ${n} (one per image)`, labels);
    const bad = labels.findIndex((l) => l < 0 || l >= this.config.classes);
    if (bad >= 0) throw new ArgumentError('labels', `Expected labels in [0, ${this.config.classes}) but labels[${bad}] is ${labels[bad]}`);
  }

  private sgd(options: SgdOptions): NativeSgd {
    if (typeof options !== 'object' || options === null) throw invalid('options', 'an object with lr', options);
    return {
      lr: numberIn('lr', options.lr, 0, 1e3),
      momentum: numberIn('momentum', options.momentum ?? PAPER_SGD.momentum, 0, 1),
      weightDecay: numberIn('weightDecay', options.weightDecay ?? PAPER_SGD.weightDecay, 0, 1),
      ...(options.lrMultipliers === undefined ? {} : { lrScale: lrScale(this.config, this.params, options.lrMultipliers) }),
    };
  }
}

// The index of the layer whose output is `name`'s features: the named layer, or the ReLU
// right after it where one follows (DeCAF's fc6/fc7 are post-ReLU). At test time dropout
// is the identity, so what follows that ReLU changes nothing.
export function featureLayer(config: NetConfig, name: string): number {
  const named = config.layers.flatMap((l) => ('name' in l ? [l.name] : []));
  const index = config.layers.findIndex((l) => 'name' in l && l.name === name);
  if (index < 0) throw invalid('layer', `a named layer of the network (${named.join(', ')})`, name);
  return config.layers[index + 1]?.type === 'relu' ? index + 1 : index;
}

// The names of a config's layers that hold parameters (conv and linear), in order.
export function parameterLayers(config: NetConfig): string[] {
  return config.layers.flatMap((l) => ('name' in l && (l.type === 'conv' || l.type === 'linear') ? [l.name] : []));
}

// Per-layer multipliers as one factor per parameter (params' order: a layer's weight and
// bias take its factor), refusing a name that is no parameter layer of the config.
export function lrScale(config: NetConfig, params: readonly ParamInfo[], multipliers: Record<string, number>): Float32Array {
  if (typeof multipliers !== 'object' || multipliers === null || Array.isArray(multipliers)) {
    throw invalid('lrMultipliers', 'an object {layer: factor}', multipliers);
  }
  refuseUnknownFields('lrMultipliers', multipliers, parameterLayers(config), 'lrMultipliers', 'layer');
  for (const [layer, factor] of Object.entries(multipliers)) numberIn(`lrMultipliers.${layer}`, factor, 0, 1000);
  return Float32Array.from(params, (p) => multipliers[p.name.slice(0, p.name.lastIndexOf('.'))] ?? 1);
}

// A native rejection as thrown to callers: NonFiniteLossError by its code, else an Error
// with the same message and code.
function nativeError(e: NativeError): NativeError {
  if (e.code === 'NON_FINITE_LOSS') return new NonFiniteLossError(e.message);
  const err: NativeError = new Error(e.message);
  if (e.code !== undefined) err.code = e.code;
  return err;
}

