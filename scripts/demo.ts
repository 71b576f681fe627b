// The demo until the Temporal pipeline lands: trains the small AlexNet variant
// (alexnet-32) with the paper's recipe (SGD, momentum 0.9, weight decay 0.0005, dropout,
// paper initialization) on a synthetic 10-class image set generated here, shows progress,
// reports held-out accuracy, and saves the network state as safetensors.
// It says so when it starts: the data is synthetic, not Fashion-MNIST or ImageNet.
import { SingleBar, Presets } from 'cli-progress';
import * as fs from 'fs';
import * as path from 'path';

import { Network } from '../native/index';
import { encodeState } from '../native/state';

const CLASSES = 10;
const SIZE = 32;

// Class k: an oriented grating (angle and frequency by class) in a class colour, at a
// random phase and position jitter, plus pixel noise; a fixed seed makes it reproducible.
function makeSet(n: number, seed: number): { images: Float32Array; labels: Int32Array } {
  let s = seed >>> 0;
  const rand = () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
  const images = new Float32Array(n * 3 * SIZE * SIZE);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const k = Math.floor(rand() * CLASSES);
    labels[i] = k;
    const angle = (k * Math.PI) / CLASSES + (rand() - 0.5) * 0.2;
    const freq = 0.25 + 0.1 * (k % 4);
    const phase = rand() * 2 * Math.PI;
    const colour = [Math.cos(k), Math.sin(k * 1.7), Math.cos(k * 2.3)];
    for (let y = 0; y < SIZE; y++) {
      for (let x = 0; x < SIZE; x++) {
        const v = Math.sin(freq * (x * Math.cos(angle) + y * Math.sin(angle)) + phase);
        for (let c = 0; c < 3; c++) {
          // In mean-subtracted pixel units (about -128..128), as the network sees real images.
          images[((i * 3 + c) * SIZE + y) * SIZE + x] = 60 * (v * (0.6 + 0.4 * colour[c]) + (rand() - 0.5) * 0.8);
        }
      }
    }
  }
  return { images, labels };
}

function accuracy(logits: Float32Array, labels: Int32Array): number {
  let correct = 0;
  for (let n = 0; n < labels.length; n++) {
    const row = logits.subarray(n * CLASSES, (n + 1) * CLASSES);
    if (row.indexOf(Math.max(...row)) === labels[n]) correct++;
  }
  return correct / labels.length;
}

async function run(): Promise<void> {
  const steps = Number(process.env.ALEXNET_DEMO_STEPS ?? 300);
  const batch = 64;
  const out = path.resolve(process.env.ALEXNET_DEMO_OUT ?? '.data/demo');
  console.log('alexnet demo: the Temporal pipeline (Fashion-MNIST, S3, checkpoints) is not built yet;');
  console.log(`this trains alexnet-32 with the paper's SGD recipe on SYNTHETIC 32x32 images (${CLASSES} classes) for ${steps} steps.`);
  const net = new Network('alexnet-32', { seed: 1 });
  const test = makeSet(1000, 999);
  const bar = new SingleBar({ format: 'train [{bar}] {value}/{total} steps | loss {loss} | {rate} img/s', hideCursor: true }, Presets.shades_classic);
  bar.start(steps, 0, { loss: '-', rate: '-' });
  const t0 = Date.now();
  let loss = NaN;
  for (let step = 0; step < steps; step++) {
    const { images, labels } = makeSet(batch, step + 1);
    loss = (await net.step(images, labels, { lr: 0.01 })).loss;
    bar.update(step + 1, { loss: loss.toFixed(3), rate: ((batch * (step + 1)) / ((Date.now() - t0) / 1000)).toFixed(0) });
  }
  bar.stop();
  const acc = accuracy(await net.predict(test.images), test.labels);
  fs.mkdirSync(out, { recursive: true });
  const statePath = path.join(out, 'alexnet-32.safetensors');
  fs.writeFileSync(statePath, encodeState(net));
  console.log(`final training loss ${loss.toFixed(4)}; held-out accuracy ${(acc * 100).toFixed(1)}% on 1000 synthetic images (chance: 10%)`);
  console.log(`state (weights, momentum, RNG, config) saved to ${statePath}`);
}

run().catch((err: Error) => {
  console.error(`demo failed: ${err.message}`);
  process.exit(1);
});
