// alexnet models [name]: the built-in models, or one config as JSON.
import { checkConfig, modelConfig, presetNames } from '../../native/index';
import { helpFirst } from './args';

const HELP = `usage: alexnet models [NAME]

Lists the built-in models (input, classes, layers, the last feature map), or prints the
config of model NAME as JSON (a starting point for a --model config file).`;

export async function models(argv: string[]): Promise<void> {
  helpFirst(argv, HELP);
  if (argv[0]) {
    console.log(JSON.stringify(modelConfig(argv[0]), null, 2));
    return;
  }
  const width = Math.max(...presetNames().map((n) => n.length)) + 1;
  for (const name of presetNames()) {
    const cfg = modelConfig(name);
    const shapes = checkConfig(cfg);
    const params = cfg.layers.length;
    console.log(`${name.padEnd(width)} input ${cfg.input.channels}x${cfg.input.height}x${cfg.input.width}, ${cfg.classes} classes, ${params} layers, last map ${shapes[shapes.length - 1].join('x')}`);
  }
}
