// The one place that loads the native addon (native/build/alexnet.node, or
// ALEXNET_NATIVE_ADDON), and the complete type of what it exports. Every method throws,
// and every promise rejects with, a NativeError carrying a code set in C++.
import * as fs from 'fs';
import * as path from 'path';

import type { Device, DropoutMask, NetConfig, ParamInfo, Precision } from './index';
import type { CropOptions } from './augment';

export interface NativeDeviceOptions { device: Device; devices: number[]; parallel: 'model' | 'data'; precision: Precision }
export interface CudaDevices { built: boolean; loaded: boolean; count: number; info: string }

export interface NativeTrainOptions {
  mean?: Float32Array;
  out?: Float32Array;
  pcaVectors?: Float32Array;
  pcaValues?: Float32Array;
  pcaSigma: number;
  seed: bigint;
  counter: bigint;
  firstIndex: number;
  threads?: number;
}

// The SGD settings as the addon takes them (validated in network.ts): lrScale, when
// given, one factor on lr per parameter in params() order.
export interface NativeSgd { lr: number; momentum: number; weightDecay: number; lrScale?: Float32Array }

export interface NativeNetwork {
  config(): NetConfig;
  params(): ParamInfo[];
  tensor(name: string, kind: 'value' | 'grad' | 'momentum'): Float32Array;
  // featureLayer: a layer index; its output of this forward comes back as features (n, its size).
  forward(images: Float32Array, labels: Int32Array | null, n: number, train: boolean, featureLayer?: number): Promise<{ loss: number; logits: Float32Array; features?: Float32Array }>;
  backward(): Promise<void>;
  update(sgd: NativeSgd): Promise<void>;
  step(images: Float32Array, labels: Int32Array, n: number, sgd: NativeSgd, dropout: boolean): Promise<{ loss: number }>;
  dropoutMasks(): DropoutMask[];
  getRngState(): [bigint, bigint];
  setRngState(seed: bigint, counter: bigint): void;
  getThreads(): number;
  setThreads(n: number): void;
  device(): string;
  layerSeconds(): LayerSeconds;
  resetLayerSeconds(): void;
}

// Seconds per layer (config order) in forward and in backward since the last reset,
// summed over calls; empty where the backend does not time its layers (CUDA).
export interface LayerSeconds { forward: Float64Array; backward: Float64Array }
export interface PeakFlops { fmaGflops: number; sgemmGflops: number }

// The code the native library sets on every error it throws or rejects with
// (native/src/error.h): match failures by it, not by their message.
export type NativeErrorCode = 'BAD_ARGUMENT' | 'BAD_STATE' | 'NON_FINITE_LOSS' | 'CUDA_UNAVAILABLE' | 'CUDA_ERROR' | 'OUT_OF_MEMORY' | 'INTERNAL';
export interface NativeError extends Error { code?: NativeErrorCode }

// Every method throws, and every promise rejects with, a NativeError.
export interface Binding {
  Network: new (config: NetConfig, seed: bigint, threads: number, device?: NativeDeviceOptions, init?: boolean) => NativeNetwork;
  presetConfig(name: string): NetConfig;
  presetNames(): string[];
  inferShapes(config: NetConfig): [number, number, number][];
  cudaDevices(): CudaDevices;
  // blasCore: the SGEMM's kernel family (OpenBLAS's core name, or 'fallback').
  build: { cuda: boolean; cudaLibrary: string | null; blas: string; blasCore: string; defaultThreads: number };
  augmentTrain(pixels: Uint8Array, n: number, size: number, crop: number, opts: NativeTrainOptions): Promise<Float32Array>;
  augmentCenter(pixels: Uint8Array, n: number, size: number, crop: number, opts: CropOptions): Promise<Float32Array>;
  augmentTenCrop(pixels: Uint8Array, n: number, size: number, crop: number, opts: CropOptions): Promise<Float32Array>;
  // The image-statistics sums of n (H, W, 3) uint8 images, added into the three arrays.
  accumulateImageStats(pixels: Uint8Array, n: number, height: number, width: number, pixelSum: Float64Array, rgbSum: Float64Array, rgbOuterSum: Float64Array): Promise<void>;
  // This machine's fp32 compute roof on `threads` threads (0: all cores): register FMAs and a
  // large SGEMM, GFLOP/s.
  measurePeakFlops(threads: number): Promise<PeakFlops>;
}

// OpenBLAS picks its kernels when the addon loads, from the CPU's family and model. The
// Debian OpenBLAS this project installs (0.3.21) does not know Intel's Sapphire Rapids and
// later and takes its generic SSE3 code ("Prescott"): SGEMM at 36 GFLOP/s on 2 cores where
// its AVX-512 code runs at 250. On an Intel CPU with AVX-512 (F, BW, DQ, VL), unless the
// user chose with OPENBLAS_CORETYPE, the loader asks for SkylakeX, the AVX-512 kernels it
// would give a CPU it knows. build.blasCore says what OpenBLAS runs.
export function openblasCoreType(cpuinfo: string): string | undefined {
  if (!/^vendor_id\s*:\s*GenuineIntel$/m.test(cpuinfo)) return undefined;
  const flags = new Set((/^flags\s*:(.*)$/m.exec(cpuinfo)?.[1] ?? '').trim().split(/\s+/));
  return ['avx512f', 'avx512bw', 'avx512dq', 'avx512vl'].every((f) => flags.has(f)) ? 'SkylakeX' : undefined;
}

function chooseOpenblasCore(): void {
  if (process.env.OPENBLAS_CORETYPE) return;
  let cpuinfo: string;
  try {
    cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return;  // not Linux: OpenBLAS decides
  }
  const core = openblasCoreType(cpuinfo);
  if (core) process.env.OPENBLAS_CORETYPE = core;
}

const ADDON_PATH = process.env.ALEXNET_NATIVE_ADDON ?? path.resolve(__dirname, '..', '..', 'native', 'build', 'alexnet.node');
let binding: Binding | undefined;

export function native(): Binding {
  if (binding) return binding;
  if (!fs.existsSync(ADDON_PATH)) {
    throw new Error(`The native AlexNet library is not built (no ${ADDON_PATH}). Run \`npm run build:native\` (needs cmake, g++ and libopenblas-openmp-dev; \`npm test\` installs them).`);
  }
  chooseOpenblasCore();  // before the addon (and with it OpenBLAS) loads
  try {
    binding = require(ADDON_PATH) as Binding;
  } catch (e) {
    throw new Error(`The native AlexNet library at ${ADDON_PATH} failed to load: ${(e as Error).message}. Rebuild it with \`npm run build:native\`.`);
  }
  return binding;
}

