// One process of `alexnet bench --preprocess`: runs our preprocessing
// (activities/decode-image.ts, with the given resize kernel) over the given JPEG files the
// way preprocessShard does (several images in flight, so the decoding thread never waits
// on the JavaScript thread for its next image), best of `repeat` passes, and prints one
// JSON line {images, seconds, cpu_seconds}. The parent decides the threads
// (UV_THREADPOOL_SIZE) and the cores (taskset) it runs on.
// usage: node dist/scripts/bench/preprocess-worker.js SIZE REPEAT KERNEL IN_FLIGHT FILE...
import * as fs from 'fs';

import { decodeToRgb } from '../../activities/decode-image';
import type { ResizeKernel } from '../../common/contract';
import { inLanes } from '../../common/lanes';

async function run(): Promise<void> {
  const [size, repeat, kernel, inFlight, ...files] = process.argv.slice(2) as [string, string, ResizeKernel, string, ...string[]];
  const blobs = files.map((f) => fs.readFileSync(f));
  const pass = () => inLanes(blobs.length, Number(inFlight), async (i) => {
    await decodeToRgb(blobs[i], Number(size), undefined, kernel);
  });
  await decodeToRgb(blobs[0], Number(size), undefined, kernel);  // warm-up: libvips start, code paths
  let best = { seconds: Infinity, cpu_seconds: Infinity };
  for (let r = 0; r < Number(repeat); r++) {
    const cpu0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    await pass();
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpu = process.cpuUsage(cpu0);
    if (seconds < best.seconds) best = { seconds, cpu_seconds: (cpu.user + cpu.system) / 1e6 };
  }
  console.log(JSON.stringify({ images: blobs.length, ...best }));
}

run().catch((err: Error) => {
  console.error(err.message);
  process.exit(1);
});
