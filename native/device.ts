// Where a network computes and in what precision: the options, their environment defaults
// (ALEXNET_DEVICE, ALEXNET_CUDA_*), and what the build and the machine offer.
import { ArgumentError, integerIn, invalid, oneOf } from '../common/validate';
import { native, type Binding, type CudaDevices, type NativeDeviceOptions, type PeakFlops } from './binding';

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
