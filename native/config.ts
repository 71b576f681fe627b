// Network configs: the layer types, the built-in presets (from the addon) and checks.
import { ArgumentError, integerIn, invalid } from '../common/validate';
import { native } from './binding';

export interface ConvLayer { type: 'conv'; name: string; out: number; kernel: number; stride?: number; pad?: number; groups?: number; biasInit?: number }
export interface LinearLayer { type: 'linear'; name: string; out: number; biasInit?: number }
export interface LrnLayer { type: 'lrn'; size?: number; alpha?: number; beta?: number; k?: number; groups?: number }
export interface MaxPoolLayer { type: 'maxpool'; kernel: number; stride: number }
export interface DropoutLayer { type: 'dropout'; p?: number }
export interface ReluLayer { type: 'relu' }
export type LayerConfig = ConvLayer | LinearLayer | LrnLayer | MaxPoolLayer | DropoutLayer | ReluLayer;

export interface NetConfig {
  name?: string;
  input: { channels: number; height: number; width: number };
  classes: number;
  weightStd?: number;
  layers: LayerConfig[];
}

export function presetNames(): string[] {
  return native().presetNames();
}

// A built-in model's config; `classes` replaces the class count (and fc8's width).
export function modelConfig(model: string, overrides: { classes?: number } = {}): NetConfig {
  const names = presetNames();
  if (!names.includes(model)) throw invalid('model', `one of ${names.join(', ')}`, model);
  const cfg = native().presetConfig(model);
  return overrides.classes === undefined ? cfg : withClasses(cfg, overrides.classes);
}

// The config with another class count: `classes` and the last linear layer's width.
export function withClasses(config: NetConfig, classes: number): NetConfig {
  const k = integerIn('classes', classes, 1, CONFIG_LIMITS.classes);
  const layers = [...config.layers];
  layers[layers.length - 1] = { ...(layers[layers.length - 1] as LinearLayer), out: k };
  return { ...config, classes: k, layers };
}

// Throws an Error naming the first bad layer; returns each layer's output (C, H, W).
export function checkConfig(config: NetConfig): [number, number, number][] {
  if (typeof config !== 'object' || config === null) throw invalid('config', 'a network config object', config);
  return native().inferShapes(config);
}


// What a config read from a file (a checkpoint, a weights file) may ask for: well above
// every built-in model (`alexnet models`; the paper's AlexNet, about the largest, has 22 layers,
// a 227x227x3 input, 1000 classes, layers up to 4096 wide, kernels up to 11, 61M
// parameters, 0.72G multiply-adds and 1.9M activations per image), and low enough that a
// corrupt or hostile config cannot make loading, inference or export take minutes or tens
// of gigabytes (100,000 relus once took classify 4.9 s and 1.4 GB). docs/formats.md.
export const CONFIG_LIMITS = {
  layers: 256,
  inputSide: 2048,               // input height and width
  inputChannels: 64,
  classes: 1_000_000,            // also withClasses's bound
  width: 65_536,                 // a conv or linear layer's out, a layer's groups
  window: 64,                    // conv and maxpool kernel, stride and pad; LRN size
  nameLength: 128,               // a layer's name (its parameters' prefix), the config's name
  parameters: 1_000_000_000,     // weights and biases (4 GB each of weights, gradients, momentum)
  multiplyAdds: 20_000_000_000,  // per image, in the conv and linear layers
  activations: 50_000_000,       // values per image: every layer's output, summed
} as const;

// A config read from a file, checked field by field against CONFIG_LIMITS, then for its
// structure (checkConfig) and its size (parameters, multiply-adds, activations), before
// anything is built from it. Throws an Error naming the first field out of bounds
// ("Expected integer between 1 and 64 for config.layers[3].kernel but received 99").
export function checkConfigLimits(raw: unknown): NetConfig {
  const L = CONFIG_LIMITS;
  const object = (name: string, v: unknown): Record<string, unknown> => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalid(name, 'an object', v);
    return v as Record<string, unknown>;
  };
  const int = (o: Record<string, unknown>, at: string, key: string, min: number, max: number, optional = true) =>
    (optional && o[key] === undefined) || integerIn(`${at}.${key}`, o[key], min, max);
  const finite = (o: Record<string, unknown>, at: string, key: string) => {
    if (o[key] !== undefined && !(typeof o[key] === 'number' && Number.isFinite(o[key]))) throw invalid(`${at}.${key}`, 'a finite number', o[key]);
  };
  const name = (o: Record<string, unknown>, at: string, key: string, optional: boolean) => {
    const v = o[key];
    if (optional && v === undefined) return;
    if (typeof v !== 'string' || v === '' || v.length > L.nameLength) throw invalid(`${at}.${key}`, `a non-empty string of at most ${L.nameLength} characters`, v);
  };
  const config = object('config', raw);
  name(config, 'config', 'name', true);
  const input = object('config.input', config.input);
  int(input, 'config.input', 'channels', 1, L.inputChannels, false);
  int(input, 'config.input', 'height', 1, L.inputSide, false);
  int(input, 'config.input', 'width', 1, L.inputSide, false);
  int(config, 'config', 'classes', 1, L.classes, false);
  finite(config, 'config', 'weightStd');
  const layers = config.layers;
  if (!Array.isArray(layers) || layers.length < 1 || layers.length > L.layers) throw invalid('config.layers', `an array of 1 to ${L.layers} layers`, layers);
  layers.forEach((raw, i) => {
    const at = `config.layers[${i}]`;
    const l = object(at, raw);
    switch (l.type) {
      case 'conv':
        name(l, at, 'name', false);
        int(l, at, 'out', 1, L.width, false);
        int(l, at, 'kernel', 1, L.window, false);
        int(l, at, 'stride', 1, L.window);
        int(l, at, 'pad', 0, L.window);
        int(l, at, 'groups', 1, L.width);
        finite(l, at, 'biasInit');
        break;
      case 'linear':
        name(l, at, 'name', false);
        int(l, at, 'out', 1, L.width, false);
        finite(l, at, 'biasInit');
        break;
      case 'lrn':
        int(l, at, 'size', 1, L.window);
        int(l, at, 'groups', 1, L.width);
        for (const key of ['alpha', 'beta', 'k']) finite(l, at, key);
        break;
      case 'maxpool':
        int(l, at, 'kernel', 1, L.window, false);
        int(l, at, 'stride', 1, L.window, false);
        break;
      case 'dropout':
        finite(l, at, 'p');
        break;
      case 'relu':
        break;
      default:
        throw invalid(`${at}.type`, 'one of "conv", "linear", "lrn", "maxpool", "dropout", "relu"', l.type);
    }
  });
  const checked = raw as NetConfig;
  const shapes = checkConfig(checked);
  let parameters = 0, multiplyAdds = 0, activations = 0;
  let [c, h, w] = [checked.input.channels, checked.input.height, checked.input.width];
  checked.layers.forEach((l, i) => {
    const [oc, oh, ow] = shapes[i];
    if (l.type === 'conv') {
      const fanIn = (c / (l.groups ?? 1)) * l.kernel * l.kernel;
      parameters += oc * fanIn + oc;
      multiplyAdds += oc * oh * ow * fanIn;
    } else if (l.type === 'linear') {
      parameters += oc * c * h * w + oc;
      multiplyAdds += oc * c * h * w;
    }
    activations += oc * oh * ow;
    [c, h, w] = [oc, oh, ow];
  });
  for (const [what, value, limit] of [['parameters', parameters, L.parameters], ['multiply-adds per image', multiplyAdds, L.multiplyAdds], ['activations per image', activations, L.activations]] as const) {
    if (value > limit) throw new ArgumentError('config', `Expected at most ${limit.toExponential()} ${what} for config but received a network of ${value.toExponential(2)}`);
  }
  return checked;
}
