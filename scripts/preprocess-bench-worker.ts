// One process of `alexnet bench --preprocess`: decodes the given JPEG files with our
// preprocessing (activities/decode-image.ts, with the given resize kernel) one at a time, on one libvips thread, and
// prints one JSON line {images, seconds}. Run as a child so each measures one core.
import * as fs from 'fs';

import sharp from 'sharp';

import { decodeToRgb } from '../activities/decode-image';
import type { ResizeKernel } from '../workflows/shared';

async function run(): Promise<void> {
  const [size, repeat, kernel, ...files] = process.argv.slice(2) as [string, string, ResizeKernel, ...string[]];
  sharp.concurrency(1);
  const blobs = files.map((f) => fs.readFileSync(f));
  await decodeToRgb(blobs[0], Number(size), undefined, kernel);  // warm-up
  let best = Infinity;
  for (let r = 0; r < Number(repeat); r++) {
    const t0 = process.hrtime.bigint();
    for (const b of blobs) await decodeToRgb(b, Number(size), undefined, kernel);
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9);
  }
  console.log(JSON.stringify({ images: blobs.length, seconds: best }));
}

run().catch((err: Error) => {
  console.error(err.message);
  process.exit(1);
});
