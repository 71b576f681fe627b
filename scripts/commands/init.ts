// alexnet init: a freshly initialized network state, as the paper initializes it.
import { Network, withClasses } from '../../native/index';
import { encodeState } from '../../native/state';
import { intOption, numberOption, parse, required, resolveModel, writeFileAtomic } from './args';

const HELP = `usage: alexnet init --model <name|config.json> --out W.safetensors [--seed 0] [--classes K] [--weight-std 0.01]

Writes weights ~ N(0, 0.01^2) and the paper's biases, zero momentum, the RNG state and
the config (in the metadata) as safetensors. --weight-std replaces the paper's 0.01.`;

export async function init(argv: string[]): Promise<void> {
  const o = parse(argv, { model: { type: 'string' }, out: { type: 'string' }, seed: { type: 'string' }, classes: { type: 'string' }, 'weight-std': { type: 'string' } }, HELP);
  let config = resolveModel(required(o.model, 'model', HELP));
  if (o.classes !== undefined) config = withClasses(config, intOption(o.classes, 'classes', 0));
  if (o['weight-std'] !== undefined) config.weightStd = numberOption(o['weight-std'], 'weight-std', 0.01);
  const net = new Network(config, { seed: intOption(o.seed, 'seed', 0, 0) });
  const out = required(o.out, 'out', HELP);
  writeFileAtomic(out, encodeState(net));
  console.log(`wrote ${out}: ${config.name ?? 'custom'} with ${net.params.length} parameter tensors`);
}
