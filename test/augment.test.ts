// The augmentation API over the addon: exact centre and ten-crop patches, the mean image
// subtracted at each patch's source position, PCA colour noise, determinism from
// (seed, counter, index), argument errors that name the argument.
import test from 'ava';

import { augmentCenter, augmentTenCrop, augmentTrain, paperPcaValues } from '../native/augment';

// Image n, row y, column x, channel c holds a value that identifies all four.
function makePixels(n: number, size: number): Uint8Array {
  const p = new Uint8Array(n * size * size * 3);
  for (let i = 0; i < p.length; i++) p[i] = (i * 37 + (i >> 8) * 11) & 255;
  return p;
}

// The definition: out[c][y][x] = inp[oy+y][ox+xs][c] - mean[oy+y][ox+xs][c].
function patch(pixels: Uint8Array, image: number, size: number, crop: number, ox: number, oy: number, flip: boolean, mean?: Float32Array): Float32Array {
  const out = new Float32Array(3 * crop * crop);
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < crop; y++) {
      for (let x = 0; x < crop; x++) {
        const xs = flip ? crop - 1 - x : x;
        const at = ((oy + y) * size + ox + xs) * 3 + c;
        out[(c * crop + y) * crop + x] = Math.fround(pixels[image * size * size * 3 + at] - (mean ? mean[at] : 0));
      }
    }
  }
  return out;
}

const SAME = { seed: 7n, counter: 3n };
const V = [-0.5675, 0.7192, 0.4009, -0.5808, -0.0045, -0.814, -0.5836, -0.6948, 0.4203];

test('augmentCenter: the central patch of a known image, exactly, in NCHW', async (t) => {
  const pixels = Uint8Array.from({ length: 27 }, (_, i) => i);  // one 3x3 RGB image
  t.deepEqual(Array.from(await augmentCenter(pixels, 1, 3, 1)), [12, 13, 14]);
  const p2 = makePixels(2, 36);
  const out = await augmentCenter(p2, 2, 36, 32);
  t.is(out.length, 2 * 3 * 32 * 32);
  t.deepEqual(out.subarray(3 * 32 * 32), patch(p2, 1, 36, 32, 2, 2, false));
});

test('augmentCenter: subtracts the mean image at the patch position', async (t) => {
  const pixels = makePixels(2, 8);
  const mean = Float32Array.from({ length: 8 * 8 * 3 }, (_, i) => (i % 50) + 0.25);
  const out = await augmentCenter(pixels, 2, 8, 5, { mean });
  t.deepEqual(out.subarray(0, 75), patch(pixels, 0, 8, 5, 1, 1, false, mean));
  t.deepEqual(out.subarray(75), patch(pixels, 1, 8, 5, 1, 1, false, mean));
});

test('augmentTenCrop: corners, centre, then their reflections', async (t) => {
  const size = 7, crop = 4, e = size - crop, h = Math.floor(e / 2);
  const pixels = makePixels(2, size);
  const out = await augmentTenCrop(pixels, 2, size, crop, { threads: 1 });
  t.is(out.length, 20 * 3 * crop * crop);
  const offsets = [[0, 0], [e, 0], [0, e], [e, e], [h, h]];
  for (let n = 0; n < 2; n++) {
    for (let k = 0; k < 10; k++) {
      const [ox, oy] = offsets[k % 5];
      const at = (n * 10 + k) * 3 * crop * crop;
      t.deepEqual(out.subarray(at, at + 3 * crop * crop), patch(pixels, n, size, crop, ox, oy, k >= 5), `image ${n} patch ${k}`);
    }
  }
});

test('augmentTrain: the mean is taken where each random patch came from', async (t) => {
  // With the image itself as the mean, every patch is zero whatever its crop and flip.
  const pixels = makePixels(1, 16);
  const mean = Float32Array.from(pixels);
  for (let counter = 0n; counter < 8n; counter++) {
    const out = await augmentTrain(pixels, 1, 16, 9, { mean, seed: 1n, counter });
    t.true(out.every((x) => x === 0), `counter ${counter}`);
  }
});

test('augmentTrain: patches are crops of the image, varied, and noise is per image', async (t) => {
  const size = 12, crop = 8;
  const pixels = makePixels(16, size);
  const plain = await augmentTrain(pixels, 16, size, crop, SAME);
  const crops = new Set<string>();
  for (let n = 0; n < 16; n++) {
    const got = plain.subarray(n * 192, (n + 1) * 192);
    let found = '';
    for (let oy = 0; oy <= size - crop && !found; oy++) {
      for (let ox = 0; ox <= size - crop && !found; ox++) {
        for (const flip of [false, true]) {
          if (patch(pixels, n, size, crop, ox, oy, flip).every((v, i) => v === got[i])) found = `${ox},${oy},${flip}`;
        }
      }
    }
    t.truthy(found, `image ${n} is a crop of its source`);
    crops.add(found);
  }
  t.true(crops.size > 4, `the crops vary (${[...crops].join(' ')})`);
  // Colour noise: the same offset per image on every pixel and channel-wise, zero at sigma 0.
  const noisy = await augmentTrain(pixels, 16, size, crop, { ...SAME, pcaVectors: V, pcaValues: [40, 5, 1] });
  const d = (n: number, c: number) => noisy[n * 192 + c * 64] - plain[n * 192 + c * 64];
  for (let n = 0; n < 16; n++) {
    for (let c = 0; c < 3; c++) {
      t.true(noisy.subarray(n * 192 + c * 64, n * 192 + (c + 1) * 64).every((v, i) => Math.abs(v - plain[n * 192 + c * 64 + i] - d(n, c)) < 1e-3));
    }
  }
  t.not(d(0, 0), d(1, 0), 'each image draws its own noise');
  const zero = await augmentTrain(pixels, 16, size, crop, { ...SAME, pcaVectors: V, pcaValues: [40, 5, 1], pcaSigma: 0 });
  t.deepEqual(zero, plain);
});

test('augmentTrain: deterministic across calls, thread counts and batch splits', async (t) => {
  const size = 20, crop = 15, per = 3 * crop * crop;
  const pixels = makePixels(6, size);
  const opts = { ...SAME, mean: new Float32Array(size * size * 3).fill(100.5), pcaVectors: Float32Array.from(V), pcaValues: paperPcaValues([14000, 1200, 300]), firstIndex: 40 };
  const a = await augmentTrain(pixels, 6, size, crop, opts);
  const [b, c] = await Promise.all([augmentTrain(pixels, 6, size, crop, { ...opts, threads: 1 }), augmentTrain(pixels, 6, size, crop, { ...opts, threads: 2 })]);
  t.deepEqual(b, a);
  t.deepEqual(c, a);
  const tail = await augmentTrain(pixels.subarray(2 * size * size * 3), 4, size, crop, { ...opts, firstIndex: 42 });
  t.deepEqual(tail, a.subarray(2 * per), 'images 2.. alone with firstIndex + 2 get the same patches');
  t.notDeepEqual(await augmentTrain(pixels, 6, size, crop, { ...opts, counter: 4n }), a, 'a new counter draws anew');
  t.notDeepEqual(await augmentTrain(pixels, 6, size, crop, { ...opts, seed: 8 }), a, 'a new seed draws anew');
  const out = new Float32Array(6 * per).fill(Number.NaN);
  t.is(await augmentTrain(pixels, 6, size, crop, { ...opts, out }), out, 'resolves with the caller\'s buffer');
  t.deepEqual(out, a, 'written in place, every element');
  const ten = new Float32Array(60 * per);
  t.is(await augmentTenCrop(pixels, 6, size, crop, { out: ten }), ten);
  t.deepEqual(ten, await augmentTenCrop(pixels, 6, size, crop));
});

test('augment: bad arguments fail with messages that name them', (t) => {
  const pixels = makePixels(2, 4);
  t.throws(() => augmentCenter(pixels, 2, 4, 5), { message: 'Expected integer between 1 and 4 for crop but received 5' });
  t.throws(() => augmentTenCrop(pixels, 2, 4, 0), { message: /for crop but received 0/ });
  t.throws(() => augmentCenter(pixels, 3, 4, 2), { message: 'Expected a Uint8Array of n*size*size*3 = 144 bytes (layout N,H,W,RGB) for pixels but received Uint8Array(96)' });
  t.throws(() => augmentCenter(new Float32Array(96) as unknown as Uint8Array, 2, 4, 2), { message: /Expected Uint8Array for pixels but received Float32Array\(96\)/ });
  t.throws(() => augmentCenter(pixels, 2, 4.5, 2), { message: /for size but received 4.5/ });
  t.throws(() => augmentCenter(pixels, -1, 4, 2), { message: /for n but received -1/ });
  t.throws(() => augmentCenter(pixels, 2, 4, 2, { mean: new Float32Array(47) }), { message: /size\*size\*3 = 48 values .* for mean but received Float32Array\(47\)/ });
  t.throws(() => augmentCenter(pixels, 2, 4, 2, { threads: 0 }), { message: /for threads but received 0/ });
  t.throws(() => augmentTenCrop(pixels, 2, 4, 2, { out: new Float32Array(24) }), { message: 'Expected a Float32Array of 240 values (the result\'s length) for out but received Float32Array(24)' });
  t.throws(() => augmentTrain(pixels, 2, 4, 2, undefined as never), { message: /for opts but received undefined/ });
  t.throws(() => augmentTrain(pixels, 2, 4, 2, { seed: -1n, counter: 0n }), { message: /non-negative integer below 2\^64 .* for seed but received -1/ });
  t.throws(() => augmentTrain(pixels, 2, 4, 2, { seed: 0n, counter: 1.5 }), { message: /for counter but received 1.5/ });
  t.throws(() => augmentTrain(pixels, 2, 4, 2, { ...SAME, firstIndex: -1 }), { message: /for firstIndex but received -1/ });
  t.throws(() => augmentTrain(pixels, 2, 4, 2, { ...SAME, pcaSigma: Number.NaN }), { message: /for pcaSigma but received NaN/ });
  t.throws(() => augmentTrain(pixels, 2, 4, 2, { ...SAME, pcaVectors: V }), { message: /Expected pcaValues too/ });
  t.throws(() => augmentTrain(pixels, 2, 4, 2, { ...SAME, pcaVectors: V.slice(1), pcaValues: [1, 2, 3] }), { message: /Expected 9 finite numbers .* for pcaVectors but received array\(8\)/ });
  t.throws(() => augmentTrain(pixels, 2, 4, 2, { ...SAME, pcaVectors: V, pcaValues: [1, Number.NaN, 3] }), { message: /for pcaValues/ });
});

test('augment: an empty batch gives an empty result', async (t) => {
  t.is((await augmentTrain(new Uint8Array(0), 0, 8, 4, SAME)).length, 0);
  t.is((await augmentTenCrop(new Uint8Array(0), 0, 8, 4)).length, 0);
});

test('paperPcaValues: 0..255 covariance eigenvalues to the paper scale in 0..255 units', (t) => {
  t.deepEqual(paperPcaValues([255 * 55.46, 510, 0]), Float32Array.of(55.46, 2, 0));
  t.throws(() => paperPcaValues([1, 2]), { message: /Expected 3 finite numbers .* for eigenvalues but received array\(2\)/ });
});
