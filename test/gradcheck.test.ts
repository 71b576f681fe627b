// Finite-difference gradient checks through the TypeScript API, one per layer type: a
// small network [conv, <layer>, linear] whose parameter gradients must flow back through
// the layer under test. Weights are perturbed in place through the zero-copy views.
import test from 'ava';

import { LayerConfig, NetConfig, Network } from '../native/index';
import { makeBatch } from './helpers';

function netWith(layer: LayerConfig | null): NetConfig {
  const layers: LayerConfig[] = [{ type: 'conv', name: 'conv1', out: 6, kernel: 3, stride: 1, pad: 1, groups: 1 }];
  if (layer) layers.push(layer);
  layers.push({ type: 'conv', name: 'conv2', out: 4, kernel: 3, stride: 2, pad: 0, groups: 2 });
  layers.push({ type: 'linear', name: 'fc', out: 5 });
  return { name: 'gradcheck', input: { channels: 2, height: 9, width: 9 }, classes: 5, weightStd: 0.5, layers };
}

const CASES: [string, LayerConfig | null][] = [
  ['conv (grouped) and linear', null],
  ['relu', { type: 'relu' }],
  ['lrn', { type: 'lrn', size: 5, alpha: 0.3, beta: 0.75, k: 2, groups: 2 }],
  ['maxpool', { type: 'maxpool', kernel: 3, stride: 1 }],
  ['dropout', { type: 'dropout', p: 0.5 }],
];

for (const [name, layer] of CASES) {
  test(`gradcheck: ${name} backward matches finite differences of the loss`, async (t) => {
    const net = new Network(netWith(layer), { seed: 3 });
    const { images, labels } = makeBatch(3, net.inputSize, 5);
    // train: true uses the dropout mask of the current step for every forward below
    // (the draw advances only with update()).
    const train = layer?.type === 'dropout';
    await net.forward(images, labels, { train });
    await net.backward();
    for (const p of net.params) {
      const w = net.weight(p.name);
      const g = net.gradient(p.name).slice();
      let num2 = 0;
      let den2 = 0;
      const stride = Math.max(1, Math.floor(w.length / 20));
      for (let i = 0; i < w.length; i += stride) {
        const keep = w[i];
        const eps = 1e-2;
        w[i] = keep + eps;
        const up = (await net.forward(images, labels, { train })).loss;
        w[i] = keep - eps;
        const down = (await net.forward(images, labels, { train })).loss;
        w[i] = keep;
        const numeric = (up - down) / (2 * eps);
        num2 += (numeric - g[i]) ** 2;
        den2 += numeric ** 2 + g[i] ** 2;
      }
      const rel = Math.sqrt(num2) / Math.max(Math.sqrt(den2), 1e-30);
      t.true(rel < 2e-2, `${p.name}: relative distance ${rel.toExponential(2)}`);
    }
  });
}
