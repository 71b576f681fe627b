// The paper's data augmentation over the native library (native/src/augment.h): batch
// file pixels (N, S, S, 3) uint8 in, network input (N, 3, C, C) float32 out, in raw
// pixel units minus the mean image. Training: random C x C patches, horizontal
// reflections and PCA colour noise, every draw a pure function of (seed, counter, image
// index), so a run is reproducible and resumable from two integers. Test: the central
// patch, or the paper's ten patches (four corners, centre, and their reflections).
// Arguments are validated here with messages naming them; the work runs on a native
// thread and the result is a Float32Array over native memory (no copy).
import { ArgumentError, integerIn, invalid, numberIn } from '../common/validate';
import { native, type NativeTrainOptions } from './binding';

// The paper's alpha_i ~ N(0, 0.1): the standard deviation of the colour-noise weights.
export const PAPER_PCA_SIGMA = 0.1;

export interface CropOptions {
  mean?: Float32Array;  // (size, size, 3) mean image, subtracted at each patch's source position
  threads?: number;     // OpenMP threads for this call; default all cores
  // Write into this array (exactly the result's length) and resolve with it, instead of
  // allocating: reusing one buffer per batch saves ~30 ms of page faults at 128x227x227.
  // Do not touch it until the promise settles.
  out?: Float32Array;
}

export interface AugmentTrainOptions extends CropOptions {
  pcaVectors?: Float32Array | readonly number[];  // (3, 3) row-major, eigenvectors as columns
  pcaValues?: Float32Array | readonly number[];   // (3) lambda_i, in output units: see paperPcaValues
  pcaSigma?: number;                              // default PAPER_PCA_SIGMA
  seed: bigint | number;
  counter: bigint | number;  // e.g. the epoch: a new counter draws new patches for every image
  firstIndex?: number;       // image index of pixels' first image (default 0)
}

// The colour noise adds sum_i p_i * alpha_i * lambda_i with lambda exactly as given, so
// its units decide the noise's size. The paper's formula is stated for pixels in [0, 1]
// (fb.resnet.torch's ImageNet lambda = 0.2175, 0.0188, 0.0045; MXNet's 0..255 version is
// those times 255: 55.46, 4.794, 1.148). stats.json holds eigenvalues of the 0..255
// covariance, 255^2 times the [0, 1] ones, so the same noise in our 0..255 units takes
// lambda = eigenvalue / 255. (sqrt(eigenvalue), the standard deviation along each
// component, is the other reading in use: about 2.5x more noise on ImageNet.) Passing
// the raw eigenvalues would add noise hundreds of levels wide.
export function paperPcaValues(eigenvalues: Float32Array | readonly number[]): Float32Array {
  return Float32Array.from(finiteFloats('eigenvalues', eigenvalues, 3), (l) => l / 255);
}

// Training patches (n, 3, crop, crop): per image a random crop and reflection and PCA
// colour noise (when pcaVectors/pcaValues are given), drawn from (seed, counter,
// firstIndex + i); the same arguments always give the same bits.
export function augmentTrain(pixels: Uint8Array, n: number, size: number, crop: number, opts: AugmentTrainOptions): Promise<Float32Array> {
  checkImages(pixels, n, size, crop);
  if (typeof opts !== 'object' || opts === null) throw invalid('opts', 'an object with seed and counter', opts);
  const args: NativeTrainOptions = {
    ...cropOptions(opts, size, n * 3 * crop * crop),
    pcaSigma: numberIn('pcaSigma', opts.pcaSigma ?? PAPER_PCA_SIGMA, 0, 1000),
    seed: toUint64('seed', opts.seed),
    counter: toUint64('counter', opts.counter),
    firstIndex: integerIn('firstIndex', opts.firstIndex ?? 0, 0, Number.MAX_SAFE_INTEGER),
  };
  if ((opts.pcaVectors === undefined) !== (opts.pcaValues === undefined)) {
    const missing = opts.pcaVectors === undefined ? 'pcaVectors' : 'pcaValues';
    throw new ArgumentError(missing, `Expected ${missing} too: pcaVectors and pcaValues go together (or neither)`);
  }
  if (opts.pcaVectors !== undefined && opts.pcaValues !== undefined) {
    args.pcaVectors = finiteFloats('pcaVectors', opts.pcaVectors, 9);
    args.pcaValues = finiteFloats('pcaValues', opts.pcaValues, 3);
  }
  return native().augmentTrain(pixels, n, size, crop, args);
}

// The central patch (n, 3, crop, crop), offset floor((size - crop) / 2): the test input.
export function augmentCenter(pixels: Uint8Array, n: number, size: number, crop: number, opts: CropOptions = {}): Promise<Float32Array> {
  checkImages(pixels, n, size, crop);
  return native().augmentCenter(pixels, n, size, crop, cropOptions(opts, size, n * 3 * crop * crop));
}

// The paper's ten test patches (n * 10, 3, crop, crop), image-major: top-left,
// top-right, bottom-left, bottom-right, centre, then the same five reflected.
export function augmentTenCrop(pixels: Uint8Array, n: number, size: number, crop: number, opts: CropOptions = {}): Promise<Float32Array> {
  checkImages(pixels, n, size, crop);
  return native().augmentTenCrop(pixels, n, size, crop, cropOptions(opts, size, n * 10 * 3 * crop * crop));
}

function checkImages(pixels: Uint8Array, n: number, size: number, crop: number): void {
  if (!(pixels instanceof Uint8Array)) throw invalid('pixels', 'Uint8Array', pixels);
  integerIn('n', n, 0, 2 ** 31 - 1);
  integerIn('size', size, 1, 32768);
  integerIn('crop', crop, 1, size);
  const want = n * size * size * 3;
  if (pixels.length !== want) throw invalid('pixels', `a Uint8Array of n*size*size*3 = ${want} bytes (layout N,H,W,RGB)`, pixels);
}

function cropOptions(opts: CropOptions, size: number, outLength: number): CropOptions {
  if (typeof opts !== 'object' || opts === null) throw invalid('opts', 'an object', opts);
  const out: CropOptions = {};
  if (opts.mean !== undefined) {
    const want = size * size * 3;
    if (!(opts.mean instanceof Float32Array) || opts.mean.length !== want) {
      throw invalid('mean', `a Float32Array of size*size*3 = ${want} values (the mean image, layout H,W,RGB)`, opts.mean);
    }
    out.mean = opts.mean;
  }
  if (opts.out !== undefined) {
    if (!(opts.out instanceof Float32Array) || opts.out.length !== outLength) {
      throw invalid('out', `a Float32Array of ${outLength} values (the result's length)`, opts.out);
    }
    out.out = opts.out;
  }
  if (opts.threads !== undefined) out.threads = integerIn('threads', opts.threads, 1, 1024);
  return out;
}

function finiteFloats(name: string, value: unknown, length: number): Float32Array {
  const ok = (value instanceof Float32Array || Array.isArray(value)) && value.length === length;
  const floats = ok ? Float32Array.from(value as ArrayLike<number>) : undefined;
  if (!floats || floats.some((x) => !Number.isFinite(x))) throw invalid(name, `${length} finite numbers (Float32Array or array)`, value);
  return floats;
}

function toUint64(name: string, value: unknown): bigint {
  if (typeof value === 'bigint' && value >= 0n && value < 1n << 64n) return value;
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return BigInt(value);
  throw invalid(name, 'non-negative integer below 2^64 (bigint or number)', value);
}
