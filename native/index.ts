// The typed Network API over the native addon (loaded by ./binding).
// Arguments are validated here, before they reach C++, with messages naming them; every
// long operation runs on a native thread and returns a promise; calls on one network are
// queued so they never overlap; parameter tensors are zero-copy views of native memory.

import { ArgumentError, integerIn, invalid, numberIn, oneOf } from '../common/validate';
import { native, type Binding, type CudaDevices, type LayerSeconds, type NativeDeviceOptions, type NativeError, type NativeNetwork, type PeakFlops } from './binding';

export type { CudaDevices, LayerSeconds, NativeError, NativeErrorCode, PeakFlops } from './binding';
export { native } from './binding';

export interface ConvLayer { type: 'conv'; name: string; out: number; kernel: number; stride?: number; pad?: number; groups?: number; biasInit?: number }
export interface LinearLayer { type: 'linear'; name: string; out: number; biasInit?: number }
export interface LrnLayer { type: 'lrn'; size?: number; alpha?: number; beta?: number; k?: number; groups?: number }
export interface MaxPoolLayer { type: 'maxpool'; kernel: number; stride: number }
export interface DropoutLayer { type: 'dropout'; p?: number }
export interface ReluLayer { type: 'relu' }
export type LayerConfig = ConvLayer | LinearLayer | LrnLayer | MaxPoolLayer | DropoutLayer | ReluLayer;

export interface NetConfig {
  name?: string;
  input: { channels: number; height: number; width: number };
  classes: number;
  weightStd?: number;
  layers: LayerConfig[];
}

export interface ParamInfo { name: string; shape: number[] }
export interface SgdOptions { lr: number; momentum?: number; weightDecay?: number }
export interface StepOptions extends SgdOptions { dropout?: boolean }
export interface DropoutMask { name: string; rows: number; cols: number; data: Float32Array }

// Where a network computes. 'cuda' loads the CUDA backend (libalexnet_cuda.so) on first use.
export const DEVICES = ['cpu', 'cuda'] as const;
export type Device = typeof DEVICES[number];
export interface CudaOptions {
  devices?: number[];              // device ids; default ALEXNET_CUDA_DEVICES, else [0]
  parallel?: 'model' | 'data';     // 'model': the paper's two columns (default); 'data': a replica per device
  // What the GEMMs are fed: 'fp32' (default), 'tf32' (TF32 tensor cores) or 'bf16' (bf16
  // inputs, fp32 accumulation); weights, activations and the update stay fp32. Default
  // ALEXNET_CUDA_PRECISION, else fp32.
  precision?: Precision;
  tf32?: boolean;                  // the older spelling of precision 'tf32' (ALEXNET_CUDA_TF32=1)
}
export const PRECISIONS = ['fp32', 'tf32', 'bf16'] as const;
export type Precision = typeof PRECISIONS[number];

export const PAPER_SGD = { momentum: 0.9, weightDecay: 0.0005 } as const;

// The loss of a step was NaN or Inf: nothing was updated; the state is the last good one.
export class NonFiniteLossError extends Error {
  readonly code = 'NON_FINITE_LOSS';
  constructor(message: string) {
    super(message);
    this.name = 'NonFiniteLossError';
  }
}

export function presetNames(): string[] {
  return native().presetNames();
}

// A built-in model's config; `classes` replaces the class count (and fc8's width).
export function modelConfig(model: string, overrides: { classes?: number } = {}): NetConfig {
  const names = presetNames();
  if (!names.includes(model)) throw invalid('model', `one of ${names.join(', ')}`, model);
  const cfg = native().presetConfig(model);
  return overrides.classes === undefined ? cfg : withClasses(cfg, overrides.classes);
}

// The config with another class count: `classes` and the last linear layer's width.
export function withClasses(config: NetConfig, classes: number): NetConfig {
  const k = integerIn('classes', classes, 1, 1_000_000);
  const layers = [...config.layers];
  layers[layers.length - 1] = { ...(layers[layers.length - 1] as LinearLayer), out: k };
  return { ...config, classes: k, layers };
}

// Throws an Error naming the first bad layer; returns each layer's output (C, H, W).
export function checkConfig(config: NetConfig): [number, number, number][] {
  if (typeof config !== 'object' || config === null) throw invalid('config', 'a network config object', config);
  return native().inferShapes(config);
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

// The device a network gets when its options name none: ALEXNET_DEVICE, else the CPU.
export function defaultDevice(): Device {
  const env = process.env.ALEXNET_DEVICE;
  return env === undefined || env === '' ? 'cpu' : oneOf('ALEXNET_DEVICE', env, DEVICES);
}

function envDevices(): number[] | undefined {
  const env = process.env.ALEXNET_CUDA_DEVICES;
  if (env === undefined || env.trim() === '') return undefined;
  const ids = env.split(',').map((s) => Number(s.trim()));
  if (ids.some((d) => !Number.isInteger(d) || d < 0)) throw invalid('ALEXNET_CUDA_DEVICES', 'comma-separated device ids such as "0,1"', env);
  return ids;
}

// Options -> what the addon receives, validated, with the environment's defaults.
export function resolveDevice(options: { device?: Device; precision?: Precision; cuda?: CudaOptions } = {}): NativeDeviceOptions {
  const device = options.device === undefined ? defaultDevice() : oneOf('device', options.device, DEVICES);
  const asked = options.precision === undefined ? undefined : oneOf('precision', options.precision, PRECISIONS);
  const cuda = options.cuda ?? {};
  if (typeof cuda !== 'object' || cuda === null) throw invalid('cuda', 'an object {devices, parallel, precision}', cuda);
  const devices = cuda.devices ?? envDevices() ?? [0];
  if (!Array.isArray(devices) || devices.length === 0) throw invalid('cuda.devices', 'a non-empty array of device ids', devices);
  devices.forEach((d, i) => integerIn(`cuda.devices[${i}]`, d, 0, 1023));
  const parallel = oneOf('cuda.parallel', cuda.parallel ?? (process.env.ALEXNET_CUDA_PARALLEL || 'model'), ['model', 'data'] as const);
  if (cuda.tf32 !== undefined && typeof cuda.tf32 !== 'boolean') throw invalid('cuda.tf32', 'boolean', cuda.tf32);
  if (cuda.tf32 !== undefined && cuda.precision !== undefined && (cuda.precision === 'tf32') !== cuda.tf32) {
    throw invalid('cuda.tf32', `nothing, or ${cuda.precision === 'tf32'} to agree with cuda.precision '${cuda.precision}'`, cuda.tf32);
  }
  if (asked !== undefined && cuda.precision !== undefined && cuda.precision !== asked) {
    throw invalid('cuda.precision', `nothing, or '${asked}' to agree with precision`, cuda.precision);
  }
  if (device === 'cpu' && asked === 'tf32') {
    throw new ArgumentError('precision', 'Expected "fp32" or "bf16" for precision on the CPU (TF32 is a GPU tensor-core format) but received "tf32"');
  }
  const fromEnv = process.env.ALEXNET_CUDA_PRECISION || (process.env.ALEXNET_CUDA_TF32 === '1' ? 'tf32' : undefined);
  const cudaPrecision = cuda.precision !== undefined ? oneOf('cuda.precision', cuda.precision, PRECISIONS)
    : cuda.tf32 !== undefined ? (cuda.tf32 ? 'tf32' : 'fp32')
    : fromEnv !== undefined ? oneOf('ALEXNET_CUDA_PRECISION', fromEnv, PRECISIONS) : 'fp32';
  // The CUDA options and environment are the GPU's: the CPU multiplies in fp32 unless asked.
  const precision = asked ?? (device === 'cpu' ? 'fp32' : cudaPrecision);
  if (parallel === 'model' && devices.length > 2) throw invalid('cuda.devices', "one or two device ids for parallel 'model' (the paper's two columns)", devices);
  return { device, devices, parallel, precision };
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

  private sgd(options: SgdOptions): Required<SgdOptions> {
    if (typeof options !== 'object' || options === null) throw invalid('options', 'an object with lr', options);
    return {
      lr: numberIn('lr', options.lr, 0, 1e3),
      momentum: numberIn('momentum', options.momentum ?? PAPER_SGD.momentum, 0, 1),
      weightDecay: numberIn('weightDecay', options.weightDecay ?? PAPER_SGD.weightDecay, 0, 1),
    };
  }
}

// A native rejection as thrown to callers: NonFiniteLossError by its code, else an Error
// with the same message and code.
function nativeError(e: NativeError): NativeError {
  if (e.code === 'NON_FINITE_LOSS') return new NonFiniteLossError(e.message);
  const err: NativeError = new Error(e.message);
  if (e.code !== undefined) err.code = e.code;
  return err;
}

export function buildInfo(): Binding['build'] {
  return native().build;
}

// This machine's fp32 compute roof on `threads` threads (default all cores): GFLOP/s of
// independent register FMAs and of a large SGEMM. About a quarter of a second.
export function measurePeakFlops(threads?: number): Promise<PeakFlops> {
  return native().measurePeakFlops(threads === undefined ? 0 : integerIn('threads', threads, 1, 1024));
}

// Whether the CUDA backend is compiled in, loads, and which devices it sees (loads it).
export function cudaDevices(): CudaDevices {
  return native().cudaDevices();
}
