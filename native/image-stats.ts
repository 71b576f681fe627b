// Dataset statistics for the paper's preprocessing and colour augmentation: the mean
// image (subtracted from every input) and the PCA of the RGB pixel values (eigenvectors
// and eigenvalues of the 3x3 covariance, for "add [p1 p2 p3][a1 l1, a2 l2, a3 l3]^T").
// Shards accumulate sums; sums merge exactly (in any order, up to float64 rounding); the
// merge finalizes. Units are raw pixel values, 0..255, like the network's input.
import { native } from './binding';
import { decodeSafetensors, encodeSafetensors, tensor } from './safetensors';

export interface StatSums {
  height: number;
  width: number;
  count: number;             // images
  pixelSum: Float64Array;    // (H, W, 3): per position and channel, summed over images
  rgbSum: Float64Array;      // (3)
  rgbOuterSum: Float64Array; // (3, 3): sum of x x^T over every pixel of every image
}

export function emptySums(height: number, width: number): StatSums {
  return { height, width, count: 0, pixelSum: new Float64Array(height * width * 3), rgbSum: new Float64Array(3), rgbOuterSum: new Float64Array(9) };
}

// pixels: count images, (count, H, W, 3) uint8, packed. The sums run in the native library
// on a libuv thread (native/src/image_stats.cpp), off the event loop that the decodes of a
// shard share: in JavaScript they cost about 0.55 ms per 256x256 image, on the one thread.
// They are sums of integers below 2^53, so the result equals addImage's to the bit (the
// tests hold them to it). Do not touch s until the promise settles.
export async function addImages(s: StatSums, pixels: Uint8Array, count: number): Promise<void> {
  const bytes = s.height * s.width * 3;
  if (!Number.isInteger(count) || count < 0 || pixels.length !== count * bytes) {
    throw new RangeError(`images hold ${pixels.length} bytes, expected count ${count} x ${s.height}x${s.width}x3 = ${count * bytes}`);
  }
  if (count === 0) return;
  await native().accumulateImageStats(pixels, count, s.height, s.width, s.pixelSum, s.rgbSum, s.rgbOuterSum);
  s.count += count;
}

// The plain reference of addImages, one image: pixels (H, W, 3) uint8.
export function addImage(s: StatSums, pixels: Uint8Array): void {
  const n = s.height * s.width;
  if (pixels.length !== n * 3) throw new RangeError(`image has ${pixels.length} bytes, expected ${n * 3}`);
  let r = 0, g = 0, b = 0, rr = 0, rg = 0, rb = 0, gg = 0, gb = 0, bb = 0;
  for (let p = 0, i = 0; p < n; p++, i += 3) {
    const x = pixels[i], y = pixels[i + 1], z = pixels[i + 2];
    s.pixelSum[i] += x;
    s.pixelSum[i + 1] += y;
    s.pixelSum[i + 2] += z;
    r += x; g += y; b += z;
    rr += x * x; rg += x * y; rb += x * z; gg += y * y; gb += y * z; bb += z * z;
  }
  s.count++;
  s.rgbSum[0] += r; s.rgbSum[1] += g; s.rgbSum[2] += b;
  const o = s.rgbOuterSum;
  o[0] += rr; o[1] += rg; o[2] += rb; o[3] += rg; o[4] += gg; o[5] += gb; o[6] += rb; o[7] += gb; o[8] += bb;
}

export function mergeSums(into: StatSums, other: StatSums): void {
  if (into.height !== other.height || into.width !== other.width) {
    throw new Error(`cannot merge statistics of ${other.height}x${other.width} images into ${into.height}x${into.width}`);
  }
  into.count += other.count;
  for (let i = 0; i < into.pixelSum.length; i++) into.pixelSum[i] += other.pixelSum[i];
  for (let i = 0; i < 3; i++) into.rgbSum[i] += other.rgbSum[i];
  for (let i = 0; i < 9; i++) into.rgbOuterSum[i] += other.rgbOuterSum[i];
}

export function encodeSums(s: StatSums): Buffer {
  return encodeSafetensors({
    pixel_sum: tensor('F64', [s.height, s.width, 3], s.pixelSum),
    rgb_sum: tensor('F64', [3], s.rgbSum),
    rgb_outer_sum: tensor('F64', [3, 3], s.rgbOuterSum),
  }, { count: String(s.count), format: 'alexnet-stat-sums' });
}

export function decodeSums(buf: Buffer, source: string): StatSums {
  const f = decodeSafetensors(buf, source);
  const pixel = f.tensors.get('pixel_sum');
  const rgb = f.tensors.get('rgb_sum');
  const outer = f.tensors.get('rgb_outer_sum');
  if (!pixel || !rgb || !outer || pixel.dtype !== 'F64' || pixel.shape.length !== 3) throw new Error(`${source} is not a statistics file`);
  return { height: pixel.shape[0], width: pixel.shape[1], count: Number(f.metadata.count), pixelSum: pixel.data as Float64Array, rgbSum: rgb.data as Float64Array, rgbOuterSum: outer.data as Float64Array };
}

// Eigen-decomposition of a symmetric 3x3 matrix by cyclic Jacobi rotations. Returns
// eigenvalues in descending order and the eigenvectors as columns of a row-major 3x3.
export function symmetricEigen3(m: ArrayLike<number>): { values: number[]; vectors: number[] } {
  const a = Array.from(m);
  const v = [1, 0, 0, 0, 1, 0, 0, 0, 1];
  for (let sweep = 0; sweep < 50; sweep++) {
    const off = a[1] ** 2 + a[2] ** 2 + a[5] ** 2;
    if (off < 1e-30 * (a[0] ** 2 + a[4] ** 2 + a[8] ** 2 + 1e-300)) break;
    for (const [p, q] of [[0, 1], [0, 2], [1, 2]]) {
      const apq = a[p * 3 + q];
      if (apq === 0) continue;
      const theta = (a[q * 3 + q] - a[p * 3 + p]) / (2 * apq);
      const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
      const c = 1 / Math.sqrt(t * t + 1);
      const s = t * c;
      for (let k = 0; k < 3; k++) {  // A <- A J (columns p, q)
        const akp = a[k * 3 + p], akq = a[k * 3 + q];
        a[k * 3 + p] = c * akp - s * akq;
        a[k * 3 + q] = s * akp + c * akq;
      }
      for (let k = 0; k < 3; k++) {  // A <- J^T A (rows p, q)
        const apk = a[p * 3 + k], aqk = a[q * 3 + k];
        a[p * 3 + k] = c * apk - s * aqk;
        a[q * 3 + k] = s * apk + c * aqk;
      }
      for (let k = 0; k < 3; k++) {  // V <- V J
        const vkp = v[k * 3 + p], vkq = v[k * 3 + q];
        v[k * 3 + p] = c * vkp - s * vkq;
        v[k * 3 + q] = s * vkp + c * vkq;
      }
    }
  }
  const order = [0, 1, 2].sort((i, j) => a[j * 3 + j] - a[i * 3 + i]);
  return {
    values: order.map((i) => a[i * 3 + i]),
    vectors: [0, 1, 2].flatMap((row) => order.map((col) => v[row * 3 + col])),
  };
}

export interface DatasetStats {
  images: number;
  height: number;
  width: number;
  meanRgb: number[];          // (3)
  rgbCovariance: number[];    // (3, 3) row-major
  pcaEigenvalues: number[];   // descending
  pcaEigenvectors: number[];  // (3, 3) row-major, eigenvectors as columns
}

export function finalizeStats(s: StatSums): { stats: DatasetStats; meanImage: Float32Array } {
  if (s.count === 0) throw new Error('no images: statistics need at least one');
  const pixels = s.count * s.height * s.width;
  const mean = Array.from(s.rgbSum, (x) => x / pixels);
  const cov = [0, 1, 2].flatMap((i) => [0, 1, 2].map((j) => s.rgbOuterSum[i * 3 + j] / pixels - mean[i] * mean[j]));
  const { values, vectors } = symmetricEigen3(cov);
  const meanImage = Float32Array.from(s.pixelSum, (x) => x / s.count);
  return {
    stats: { images: s.count, height: s.height, width: s.width, meanRgb: mean, rgbCovariance: cov, pcaEigenvalues: values, pcaEigenvectors: vectors },
    meanImage,
  };
}
