// The network state as a safetensors file: every parameter under its own name
// (conv1.weight ... fc8.bias, PyTorch layouts), the momentum buffers as
// `momentum.<param>`, the RNG state as `rng.state` (int64 [seed, counter]), and in the
// metadata the config (JSON), the format version and a sha256 over the tensor bytes.
// PyTorch's safetensors.torch.load_file reads it as a state dict.
import { Network, NetConfig, type NetworkOptions } from './index';
import { dataChecksum, decodeSafetensors, encodeSafetensorsParts, readSafetensors, Safetensors, Tensor, tensor, tensorsChecksum, type TensorEntry } from './safetensors';

export const STATE_FORMAT = 'alexnet-state';
export const STATE_VERSION = '1';

// A state file that does not decode as a network state (bad checksum, wrong shapes or
// config, truncated). Decoded here, not in C++, so the code is set here.
export class StateError extends Error {
  readonly code = 'CORRUPT_STATE';
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

// The state file as its pieces (encodeSafetensorsParts): the header, then views of the
// network's own memory, so nothing is copied. The network must not train until the
// pieces are written (an object store's put of them has settled).
export function encodeStateParts(net: Network, extraMetadata: Record<string, string> = {}): Buffer[] {
  const tensors = stateTensors(net);
  return encodeSafetensorsParts(tensors, {
    ...extraMetadata,
    format: STATE_FORMAT,
    version: STATE_VERSION,
    config: JSON.stringify(net.config),
    step: net.rngState.counter.toString(),
    checksum: tensorsChecksum(Object.values(tensors)),
  });
}

export function encodeState(net: Network, extraMetadata: Record<string, string> = {}): Buffer {
  return Buffer.concat(encodeStateParts(net, extraMetadata));
}

const corrupt = (source: string) =>
  new StateError(`${source} is corrupt: its tensor bytes do not match the checksum in its metadata. Use an earlier checkpoint.`);

function configOf(metadata: Record<string, string>, source: string): NetConfig | undefined {
  if (metadata.config === undefined) return undefined;
  try {
    return JSON.parse(metadata.config) as NetConfig;
  } catch {
    throw new StateError(`${source}: its metadata 'config' is not JSON`);
  }
}

// Decodes and verifies a state file (checksum when present; a state written by another
// tool, such as PyTorch weights, may have none). The tensors are views of buf.
export function decodeState(buf: Buffer, source: string): Safetensors & { config?: NetConfig } {
  const file = decodeSafetensors(buf, source);
  const sum = file.metadata.checksum;
  if (sum !== undefined && sum !== dataChecksum(buf, file.dataStart)) throw corrupt(source);
  return { ...file, config: configOf(file.metadata, source) };
}

// A parameter's tensor as the network needs it (F32 of its shape), or undefined when the
// file has none and it is not required; the error names what differs.
function checkParam(t: Pick<TensorEntry, 'dtype' | 'shape'> | undefined, name: string, shape: number[], required: boolean, source: string): boolean {
  if (!t) {
    if (required) throw new StateError(`${source} has no tensor '${name}' (expected float32 [${shape}])`);
    return false;
  }
  if (t.dtype !== 'F32' || t.shape.join() !== shape.join()) {
    throw new StateError(`${source}: tensor '${name}' is ${t.dtype} [${t.shape}] but the network needs F32 [${shape}]`);
  }
  return true;
}

function checkRng(t: Pick<TensorEntry, 'dtype' | 'shape'>, source: string): void {
  if (t.dtype !== 'I64' || t.shape.reduce((a, b) => a * b, 1) !== 2) throw new StateError(`${source}: 'rng.state' must be int64 [2] (seed, counter)`);
}

// Copies weights (and, when present, momentum and RNG state) into `net`. Every
// parameter must be present with the network's shape; the error names what differs.
export function loadStateInto(net: Network, file: Safetensors, source: string, options: { weightsOnly?: boolean } = {}): void {
  const take = (name: string, shape: number[], required: boolean): Float32Array | undefined => {
    const t = file.tensors.get(name);
    return checkParam(t, name, shape, required, source) ? t!.data as Float32Array : undefined;
  };
  for (const p of net.params) {
    net.weight(p.name).set(take(p.name, p.shape, true)!);
    if (options.weightsOnly) continue;
    const m = take(`momentum.${p.name}`, p.shape, false);
    if (m) net.momentum(p.name).set(m);
  }
  const rng = file.tensors.get('rng.state');
  if (rng && !options.weightsOnly) {
    checkRng(rng, source);
    const [seed, counter] = rng.data as BigInt64Array;
    net.setRngState(BigInt.asUintN(64, seed), BigInt.asUintN(64, counter));
  }
}

// A fresh network from a state file that carries its config.
export function networkFromState(buf: Buffer, source: string, options: { threads?: number } = {}): Network {
  const file = decodeState(buf, source);
  if (!file.config) throw new StateError(`${source} has no 'config' in its metadata: pass the model explicitly`);
  const net = new Network(file.config, { threads: options.threads, init: false });  // every weight is loaded
  loadStateInto(net, file, source);
  return net;
}

const bytesOf = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

// A fresh network from a state file read from a stream (an object store's getStream),
// in one pass and without a copy of the file in memory: once the header has arrived the
// network is made from its config (without the random initialisation that the state
// replaces) and checked against the file's tensors, then each tensor's bytes go straight
// into the network's memory as they arrive, and the sha256 over them is computed on the
// way and checked against the metadata's. Refuses what decodeState and loadStateInto
// refuse, with the same errors (StateError, SafetensorsError), and a truncated stream.
export async function readStateNetwork(stream: AsyncIterable<Uint8Array | string>, source: string, options: Pick<NetworkOptions, 'threads' | 'device' | 'precision' | 'cuda'> = {}): Promise<{ net: Network; metadata: Record<string, string>; config: NetConfig }> {
  let net: Network | undefined;
  let config: NetConfig | undefined;
  const file = await readSafetensors(stream, source, (header) => {
    config = configOf(header.metadata, source);
    if (!config) throw new StateError(`${source} has no 'config' in its metadata`);
    const n = new Network(config, { ...options, init: false });
    // Every view first, then the bytes: on CUDA each view is a host copy made when asked.
    const into = new Map<string, Uint8Array>();
    for (const p of n.params) {
      if (checkParam(header.entries.get(p.name), p.name, p.shape, true, source)) into.set(p.name, bytesOf(n.weight(p.name)));
      const m = `momentum.${p.name}`;
      if (checkParam(header.entries.get(m), m, p.shape, false, source)) into.set(m, bytesOf(n.momentum(p.name)));
    }
    const rng = header.entries.get('rng.state');
    if (rng) checkRng(rng, source);
    net = n;
    return { into, checksum: header.metadata.checksum !== undefined };
  });
  const sum = file.metadata.checksum;
  if (sum !== undefined && sum !== file.checksum) throw corrupt(source);
  const rng = file.tensors.get('rng.state');
  if (rng) {
    const [seed, counter] = rng.data as BigInt64Array;
    net!.setRngState(BigInt.asUintN(64, seed), BigInt.asUintN(64, counter));
  }
  return { net: net!, metadata: file.metadata, config: config! };
}
