// Unit tests of the data pipeline's pure parts: the shard plan, the batch file format,
// the statistics (PCA by Jacobi), image decoding on a corpus of bad inputs, and the
// PrepareDataset input validation.
import test from 'ava';
import sharp from 'sharp';

import { BatchFormatError, decodeBatch, encodeBatch } from '../activities/batch-format';
import { decodeToRgb, ImageSkip, jpegHeader } from '../activities/decode-image';
import { addImage, addImages, decodeSums, emptySums, encodeSums, finalizeStats, mergeSums, symmetricEigen3 } from '../native/image-stats';
import { validatePrepareInput } from '../workflows/prepare-dataset';
import { planShards, SourceImage } from '../common/shard-plan';

const images: SourceImage[] = Array.from({ length: 2503 }, (_, i) => ({ key: `train/c${i % 7}/${i}.jpg`, label: i % 7 }));

test('shard plan: same images in any order and same seed give the same shards', (t) => {
  const a = planShards(images, { seed: 42, shardSize: 500 });
  const b = planShards([...images].reverse(), { seed: 42, shardSize: 500 });
  t.deepEqual(a, b);
  t.is(a.length, 6);
  t.deepEqual(a.map((s) => s.images.length), [500, 500, 500, 500, 500, 3]);
  const keys = a.flatMap((s) => s.images.map((i) => i.key));
  t.is(new Set(keys).size, images.length, 'every image exactly once');
});

test('shard plan: another seed shuffles differently, and the shuffle mixes classes', (t) => {
  const a = planShards(images, { seed: 1, shardSize: 500 });
  const b = planShards(images, { seed: 2, shardSize: 500 });
  t.notDeepEqual(a[0].images, b[0].images);
  const labels = new Set(a[0].images.map((i) => i.label));
  t.is(labels.size, 7);
  t.throws(() => planShards([images[0], images[0]], { seed: 1, shardSize: 2 }), { message: /duplicate image key/ });
  t.throws(() => planShards(images, { seed: 1, shardSize: 0 }), { message: /shardSize/ });
});

test('batch format: encode and decode round-trip; corruption and truncation are refused by name', (t) => {
  const pixels = Uint8Array.from({ length: 3 * 4 * 5 * 3 }, (_, i) => (i * 7) % 256);
  const labels = Int32Array.of(3, 0, 999);
  const buf = encodeBatch({ count: 3, height: 4, width: 5, channels: 3, pixels, labels });
  t.is(buf.toString('latin1', 0, 4), 'ALXB');
  const back = decodeBatch(buf, 'b.bin');
  t.deepEqual([back.count, back.height, back.width, back.channels], [3, 4, 5, 3]);
  t.deepEqual(Array.from(back.pixels), Array.from(pixels));
  t.deepEqual(Array.from(back.labels), [3, 0, 999]);
  const flipped = Buffer.from(buf);
  flipped[100] ^= 1;
  t.throws(() => decodeBatch(flipped, 'datasets/x/batches/train/00001.bin'), { instanceOf: BatchFormatError, message: /datasets\/x\/batches\/train\/00001\.bin is invalid: checksum mismatch/ });
  t.throws(() => decodeBatch(buf.subarray(0, buf.length - 1), 'b.bin'), { message: /sizes do not add up.*truncated/ });
  t.throws(() => decodeBatch(Buffer.alloc(100, 'not a batch file '), 'c.bin'), { message: /wrong magic/ });
});

test('stats: Jacobi eigen-decomposition reconstructs the matrix and sorts eigenvalues', (t) => {
  const m = [4, 1, 0.5, 1, 3, 0.2, 0.5, 0.2, 1];
  const { values, vectors } = symmetricEigen3(m);
  t.true(values[0] >= values[1] && values[1] >= values[2]);
  for (let i = 0; i < 3; i++) {
    for (let j = 0; j < 3; j++) {
      let s = 0;
      for (let k = 0; k < 3; k++) s += vectors[i * 3 + k] * values[k] * vectors[j * 3 + k];
      t.true(Math.abs(s - m[i * 3 + j]) < 1e-9, `V diag(l) V^T [${i},${j}] = ${s}, expected ${m[i * 3 + j]}`);
    }
  }
});

test('stats: the native addImages equals the plain addImage to the bit, and accumulates across calls', async (t) => {
  // 45x50 has 2250 positions: three blocks of the native loop, the last one partial.
  // Extreme values (0 and 255 runs) and pseudo-random ones.
  for (const [h, w, n] of [[45, 50, 7], [1, 1, 3], [36, 36, 20]] as const) {
    const bytes = h * w * 3;
    const pixels = Uint8Array.from({ length: n * bytes }, (_, i) => (i % 97 < 5 ? 255 : i % 89 < 3 ? 0 : (i * 2654435761) >>> 24));
    const reference = emptySums(h, w);
    for (let k = 0; k < n; k++) addImage(reference, pixels.subarray(k * bytes, (k + 1) * bytes));
    const native = emptySums(h, w);
    const split = Math.floor(n / 2);  // two calls: the second adds to the first's sums
    await addImages(native, pixels.subarray(0, split * bytes), split);
    await addImages(native, pixels.subarray(split * bytes), n - split);
    t.deepEqual(native, reference, `${n} images of ${h}x${w}`);
  }
  const s = emptySums(2, 2);
  await t.throwsAsync(addImages(s, new Uint8Array(11), 1), { instanceOf: RangeError, message: /expected count 1 x 2x2x3 = 12/ });
  await addImages(s, new Uint8Array(0), 0);
  t.is(s.count, 0);
});

test('stats: sums merge across shards to the statistics of the whole set', (t) => {
  const img = (seed: number) => Uint8Array.from({ length: 2 * 2 * 3 }, (_, i) => (seed * 31 + i * 17) % 256);
  const whole = emptySums(2, 2);
  const a = emptySums(2, 2);
  const b = emptySums(2, 2);
  for (let s = 0; s < 10; s++) {
    addImage(whole, img(s));
    addImage(s < 4 ? a : b, img(s));
  }
  mergeSums(a, decodeSums(encodeSums(b), 'b'));
  t.deepEqual(a, whole);
  const { stats, meanImage } = finalizeStats(whole);
  const mean0 = Array.from({ length: 10 }, (_, s) => img(s)[0]).reduce((x, y) => x + y) / 10;
  t.is(meanImage[0], Math.fround(mean0));
  t.is(stats.images, 10);
  t.is(stats.pcaEigenvalues.length, 3);
  t.true(stats.pcaEigenvalues.every((v) => v >= -1e-9));
});

test('decode: the shorter side goes to S and the centre is cropped, EXIF orientation honoured', async (t) => {
  // 60x30 image, left half black, right half white: the centre 30x30 crop is half/half.
  const raw = Buffer.alloc(60 * 30 * 3);
  for (let y = 0; y < 30; y++) for (let x = 30; x < 60; x++) raw.fill(255, (y * 60 + x) * 3, (y * 60 + x) * 3 + 3);
  const png = await sharp(raw, { raw: { width: 60, height: 30, channels: 3 } }).png().toBuffer();
  const { pixels, note } = await decodeToRgb(png, 10);
  t.is(pixels.length, 10 * 10 * 3);
  t.true(pixels[0] < 30 && pixels[(10 - 1) * 3] > 225, 'left edge dark, right edge light');
  t.regex(note ?? '', /png image/);
  // The same picture stored rotated with EXIF orientation 6 (rotate 90 clockwise to view).
  const rotated = await sharp(raw, { raw: { width: 60, height: 30, channels: 3 } }).rotate(-90).jpeg({ quality: 100 }).withMetadata({ orientation: 6 }).toBuffer();
  const upright = await decodeToRgb(rotated, 10);
  t.true(upright.pixels[0] < 40 && upright.pixels[9 * 3] > 215, 'orientation applied before the crop');
  t.regex(upright.note ?? '', /EXIF orientation 6/);
});

test('decode: the resize kernel is the one asked for (linear as Pillow\'s BILINEAR, lanczos3 by default)', async (t) => {
  // A sharp edge downscaled 3x: lanczos3 rings (overshoot clipped to 0/255 near the edge,
  // and values that differ from the linear blend), linear does not.
  const raw = Buffer.alloc(90 * 90 * 3);
  for (let y = 0; y < 90; y++) for (let x = 45; x < 90; x++) raw.fill(255, (y * 90 + x) * 3, (y * 90 + x) * 3 + 3);
  const png = await sharp(raw, { raw: { width: 90, height: 90, channels: 3 } }).png().toBuffer();
  const lanczos = await decodeToRgb(png, 30);
  const linear = await decodeToRgb(png, 30, undefined, 'linear');
  const expected = await sharp(png).resize(30, 30, { fit: 'cover', kernel: 'linear' }).raw().toBuffer();
  t.true(linear.pixels.equals(expected), 'linear equals sharp\'s own linear resize');
  t.false(lanczos.pixels.equals(linear.pixels), 'lanczos3 differs from linear');
  t.throws(() => validatePrepareInput({ dataset: 'file:///d', store: 's3://b', resizeKernel: 'box' as never }), { message: /Expected one of "lanczos3", "cubic", "linear" for resizeKernel but received "box"/ });
});

test('decode: bad inputs become skips with reasons, odd ones are converted', async (t) => {
  const rgb = (w: number, h: number) => sharp({ create: { width: w, height: h, channels: 3, background: { r: 200, g: 30, b: 40 } } });
  const jpeg = await rgb(64, 48).jpeg().toBuffer();
  const skips: [string, Buffer, RegExp][] = [
    ['zero-byte file', Buffer.alloc(0), /empty file/],
    ['text named .JPEG', Buffer.from('this is not an image\n'), /not an image/],
    ['truncated JPEG', jpeg.subarray(0, Math.floor(jpeg.length / 2)), /corrupt or truncated JPEG/],
  ];
  for (const [what, data, reason] of skips) {
    const err = await t.throwsAsync(decodeToRgb(data, 16), { instanceOf: ImageSkip }, what);
    t.regex(err!.reason, reason, what);
  }
  const bomb = await rgb(11000, 10000).jpeg({ quality: 10 }).toBuffer();
  const err = await t.throwsAsync(decodeToRgb(bomb, 16, 100_000_000), { instanceOf: ImageSkip });
  t.regex(err!.reason, /decompression bomb/);
  const cmyk = await rgb(32, 32).toColourspace('cmyk').jpeg().toBuffer();
  const c = await decodeToRgb(cmyk, 16);
  t.regex(c.note ?? '', /cmyk converted to sRGB/);
  t.true(c.pixels[0] > 150 && c.pixels[1] < 90, `CMYK red stays red (${c.pixels.subarray(0, 3).join(',')})`);
  for (const fmt of ['png', 'gif'] as const) {
    const d = await decodeToRgb(await rgb(20, 20)[fmt]().toBuffer(), 16);
    t.regex(d.note ?? '', new RegExp(`${fmt} image`));
  }
  const grey = await sharp(Buffer.alloc(20 * 20, 128), { raw: { width: 20, height: 20, channels: 1 } }).png().toBuffer();
  const g = await decodeToRgb(grey, 16);
  t.is(g.pixels.length, 16 * 16 * 3);
  t.deepEqual(Array.from(g.pixels.subarray(0, 3)), [128, 128, 128]);
});

test('PrepareDataset input: bad fields are named', (t) => {
  t.throws(() => validatePrepareInput({ dataset: '', store: 's3://b' }), { message: /for dataset/ });
  t.throws(() => validatePrepareInput({ dataset: 'file:///d', store: 's3://b', shardSize: 0 }), { message: /Expected integer between 1 and 100000 for shardSize but received 0/ });
  t.throws(() => validatePrepareInput({ dataset: 'file:///d', store: 's3://b', imageSize: 2.5 }), { message: /for imageSize/ });
  t.throws(() => validatePrepareInput({ dataset: 'file:///d/', store: 's3://b', name: '../x' }), { message: /for name/ });
  t.like(validatePrepareInput({ dataset: 's3://bucket/imagenet/', store: 's3://b' }), { name: 'imagenet', imageSize: 256, shardSize: 1000, seed: 0 });
});

test('decode: the JPEG header reader finds size, components and EXIF orientation as sharp does', async (t) => {
  const base = sharp({ create: { width: 37, height: 23, channels: 3, background: { r: 1, g: 2, b: 3 } } });
  const plain = jpegHeader(await base.clone().jpeg().toBuffer());
  t.deepEqual(plain, { width: 37, height: 23, components: 3, orientation: 1 });
  for (const le of [6, 3, 8]) {
    const h = jpegHeader(await base.clone().jpeg().withMetadata({ orientation: le }).toBuffer());
    t.is(h?.orientation, le);
  }
  t.is(jpegHeader(await base.clone().toColourspace('cmyk').jpeg().toBuffer())?.components, 4);
  const grey = await sharp(Buffer.alloc(20 * 10, 9), { raw: { width: 20, height: 10, channels: 1 } }).toColourspace('b-w').jpeg().toBuffer();
  t.like(jpegHeader(grey), { width: 20, height: 10, components: 1 });
  t.is(jpegHeader(Buffer.from('not a jpeg')), undefined);
  t.is(jpegHeader((await base.clone().jpeg().toBuffer()).subarray(0, 30)), undefined);
});
