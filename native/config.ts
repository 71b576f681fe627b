// Network configs: the layer types, the built-in presets (from the addon) and checks.
import { integerIn, invalid } from '../common/validate';
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
  const k = integerIn('classes', classes, 1, 1_000_000);
  const layers = [...config.layers];
  layers[layers.length - 1] = { ...(layers[layers.length - 1] as LinearLayer), out: k };
  return { ...config, classes: k, layers };
}

// Throws an Error naming the first bad layer; returns each layer's output (C, H, W).
export function checkConfig(config: NetConfig): [number, number, number][] {
  if (typeof config !== 'object' || config === null) throw invalid('config', 'a network config object', config);
  return native().inferShapes(config);
}

