// The network state as a safetensors file: every parameter under its own name
// (conv1.weight ... fc8.bias, PyTorch layouts), the momentum buffers as
// `momentum.<param>`, the RNG state as `rng.state` (int64 [seed, counter]), and in the
// metadata the config (JSON), the format version and a sha256 over the tensor bytes.
// PyTorch's safetensors.torch.load_file reads it as a state dict.
import { Network, NetConfig } from './index';
import { dataChecksum, decodeSafetensors, encodeSafetensors, Safetensors, Tensor, tensor, tensorsChecksum } from './safetensors';

export const STATE_FORMAT = 'alexnet-state';
export const STATE_VERSION = '1';

export class StateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StateError';
  }
}

export function stateTensors(net: Network): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const p of net.params) out[p.name] = tensor('F32', p.shape, net.weight(p.name));
  for (const p of net.params) out[`momentum.${p.name}`] = tensor('F32', p.shape, net.momentum(p.name));
  const { seed, counter } = net.rngState;
  out['rng.state'] = tensor('I64', [2], BigInt64Array.from([BigInt.asIntN(64, seed), BigInt.asIntN(64, counter)]));
  return out;
}

export function encodeState(net: Network, extraMetadata: Record<string, string> = {}): Buffer {
  const tensors = stateTensors(net);
  return encodeSafetensors(tensors, {
    ...extraMetadata,
    format: STATE_FORMAT,
    version: STATE_VERSION,
    config: JSON.stringify(net.config),
    step: net.rngState.counter.toString(),
    checksum: tensorsChecksum(Object.values(tensors)),
  });
}

// Decodes and verifies a state file (checksum when present; a state written by another
// tool, such as PyTorch weights, may have none).
export function decodeState(buf: Buffer, source: string): Safetensors & { config?: NetConfig } {
  const file = decodeSafetensors(buf, source);
  const sum = file.metadata.checksum;
  if (sum !== undefined && sum !== dataChecksum(buf, file.dataStart)) {
    throw new StateError(`${source} is corrupt: its tensor bytes do not match the checksum in its metadata. Use an earlier checkpoint.`);
  }
  let config: NetConfig | undefined;
  if (file.metadata.config !== undefined) {
    try {
      config = JSON.parse(file.metadata.config) as NetConfig;
    } catch {
      throw new StateError(`${source}: its metadata 'config' is not JSON`);
    }
  }
  return { ...file, config };
}

// Copies weights (and, when present, momentum and RNG state) into `net`. Every
// parameter must be present with the network's shape; the error names what differs.
export function loadStateInto(net: Network, file: Safetensors, source: string, options: { weightsOnly?: boolean } = {}): void {
  const take = (name: string, shape: number[], required: boolean): Float32Array | undefined => {
    const t = file.tensors.get(name);
    if (!t) {
      if (required) throw new StateError(`${source} has no tensor '${name}' (expected float32 [${shape}])`);
      return undefined;
    }
    if (t.dtype !== 'F32' || t.shape.join() !== shape.join()) {
      throw new StateError(`${source}: tensor '${name}' is ${t.dtype} [${t.shape}] but the network needs F32 [${shape}]`);
    }
    return t.data as Float32Array;
  };
  for (const p of net.params) {
    net.weight(p.name).set(take(p.name, p.shape, true)!);
    if (options.weightsOnly) continue;
    const m = take(`momentum.${p.name}`, p.shape, false);
    if (m) net.momentum(p.name).set(m);
  }
  const rng = file.tensors.get('rng.state');
  if (rng && !options.weightsOnly) {
    if (rng.dtype !== 'I64' || rng.data.length !== 2) throw new StateError(`${source}: 'rng.state' must be int64 [2] (seed, counter)`);
    const [seed, counter] = rng.data as BigInt64Array;
    net.setRngState(BigInt.asUintN(64, seed), BigInt.asUintN(64, counter));
  }
}

// A fresh network from a state file that carries its config.
export function networkFromState(buf: Buffer, source: string, options: { threads?: number } = {}): Network {
  const file = decodeState(buf, source);
  if (!file.config) throw new StateError(`${source} has no 'config' in its metadata: pass the model explicitly`);
  const net = new Network(file.config, { threads: options.threads });
  loadStateInto(net, file, source);
  return net;
}
