// The network state as a safetensors file: every parameter under its own name
// (conv1.weight ... fc8.bias, PyTorch layouts), the momentum buffers as
// `momentum.<param>`, the RNG state as `rng.state` (int64 [seed, counter]), and in the
// metadata the config (JSON), the format version, a sha256 over the tensor bytes
// (`checksum`) and one over the header (`headerChecksum`: the tensor table and the rest of
// the metadata). PyTorch's safetensors.torch.load_file reads it as a state dict.
import { createHash } from 'crypto';

import { checkConfigLimits, Network, NetConfig, type NetworkOptions } from './index';
import { dataChecksum, decodeSafetensors, encodeSafetensorsParts, inDataOrder, readSafetensors, Safetensors, StateError, Tensor, tensor, tensorsChecksum, tensorTable, type TensorEntry } from './safetensors';

// A state file that does not decode as a network state (bad checksum, wrong shapes or
// config): CORRUPT_STATE, defined beside SafetensorsError.
export { StateError };

export const STATE_FORMAT = 'alexnet-state';
// 2: `headerChecksum` covers the header. 1 (written before it): only the tensor bytes are
// checksummed; still read, with the checks every file gets (docs/formats.md).
export const STATE_VERSION = '2';
const LEGACY_STATE_VERSION = '1';

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
  const metadata: Record<string, string> = {
    ...extraMetadata,
    format: STATE_FORMAT,
    version: STATE_VERSION,
    config: JSON.stringify(net.config),
    step: net.rngState.counter.toString(),
    checksum: tensorsChecksum(Object.values(tensors)),
  };
  metadata.headerChecksum = headerChecksum(tensorTable(tensors), metadata);
  return encodeSafetensorsParts(tensors, metadata);
}

// sha256 over what the header says: each tensor's name, dtype, shape and byte range, in
// the order of their bytes in the file, and every metadata entry (the config, the format,
// version, cursor, LR...) but the two checksums, by name. The tensor bytes' checksum does
// not cover the header, so without this an edited offset, shape or config would load.
export function headerChecksum(entries: Map<string, TensorEntry>, metadata: Record<string, string>): string {
  const table = inDataOrder(entries).map(([name, e]) => [name, e.dtype, e.shape, e.begin, e.end]);
  const rest = Object.keys(metadata).filter((k) => k !== 'checksum' && k !== 'headerChecksum').sort().map((k) => [k, metadata[k]]);
  return 'sha256:' + createHash('sha256').update(JSON.stringify({ tensors: table, metadata: rest })).digest('hex');
}

export function encodeState(net: Network, extraMetadata: Record<string, string> = {}): Buffer {
  return Buffer.concat(encodeStateParts(net, extraMetadata));
}

const corrupt = (source: string, why: string) => new StateError(`${source} is corrupt: ${why}. Use an earlier checkpoint.`);

// What a state's header promises, checked once it is parsed (safetensors.ts checked its
// structure), before anything is built from it: a state of ours (format alexnet-state)
// has a version this build reads and its tensor checksum; version 2 also a headerChecksum
// that matches. A version 1 state, or a file of another tool (PyTorch weights, which may
// have no metadata at all), has no header checksum: the structural checks, the config's
// limits and, where the run is known, its run.json stand in for it.
function checkStateHeader(entries: Map<string, TensorEntry>, metadata: Record<string, string>, source: string): void {
  if (metadata.format !== STATE_FORMAT) return;
  const version = metadata.version;
  if (version !== STATE_VERSION && version !== LEGACY_STATE_VERSION) {
    throw new StateError(`${source} is a network state of version ${JSON.stringify(version)}; this build reads versions ${LEGACY_STATE_VERSION} and ${STATE_VERSION}: use the alexnet that wrote it, or a newer one`);
  }
  if (metadata.checksum === undefined) throw corrupt(source, `a network state without 'checksum' in its metadata`);
  if (version === LEGACY_STATE_VERSION) return;
  if (metadata.headerChecksum === undefined) throw corrupt(source, `a version ${version} state without 'headerChecksum' in its metadata`);
  if (metadata.headerChecksum !== headerChecksum(entries, metadata)) {
    throw corrupt(source, 'its header (tensor names, dtypes, shapes, byte ranges or metadata such as the config) does not match the headerChecksum in its metadata');
  }
}

// The config in the metadata, refused unless it is JSON within CONFIG_LIMITS.
function configOf(metadata: Record<string, string>, source: string): NetConfig | undefined {
  if (metadata.config === undefined) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(metadata.config);
  } catch {
    throw new StateError(`${source}: its metadata 'config' is not JSON`);
  }
  try {
    return checkConfigLimits(raw);
  } catch (e) {
    throw new StateError(`${source}: its config is refused: ${(e as Error).message} (the limits: docs/formats.md). Use an earlier checkpoint`);
  }
}

// Decodes and verifies a state file (checkStateHeader; the tensor checksum when present:
// a state written by another tool, such as PyTorch weights, may have none). The tensors
// are views of buf.
export function decodeState(buf: Buffer, source: string): Safetensors & { config?: NetConfig } {
  const file = decodeSafetensors(buf, source);
  checkStateHeader(file.entries, file.metadata, source);
  const sum = file.metadata.checksum;
  if (sum !== undefined && sum !== dataChecksum(buf, file.dataStart)) throw corrupt(source, 'its tensor bytes do not match the checksum in its metadata');
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

export interface ReadStateOptions extends Pick<NetworkOptions, 'threads' | 'device' | 'precision' | 'cuda'> {
  // Called with the network's config (as the network has it: every field given) before
  // any tensor bytes are read; throws to refuse it (a StateError: the config does not
  // match the run's run.json).
  verifyConfig?: (config: NetConfig) => void;
}

// A fresh network from a state file read from a stream (an object store's getStream),
// in one pass and without a copy of the file in memory: once the header has arrived and
// passed checkStateHeader, the network is made from its config (within CONFIG_LIMITS;
// without the random initialisation that the state replaces) and checked against the
// file's tensors (which must all be the state's), then each tensor's bytes go straight
// into the network's memory as they arrive, and the sha256 over them is computed on the
// way and checked against the metadata's. Refuses what decodeState and loadStateInto
// refuse, with the same errors (StateError, SafetensorsError), and a truncated stream.
export async function readStateNetwork(stream: AsyncIterable<Uint8Array | string>, source: string, options: ReadStateOptions = {}): Promise<{ net: Network; metadata: Record<string, string>; config: NetConfig }> {
  const { verifyConfig, ...networkOptions } = options;
  let net: Network | undefined;
  let config: NetConfig | undefined;
  const file = await readSafetensors(stream, source, (header) => {
    checkStateHeader(header.entries, header.metadata, source);
    config = configOf(header.metadata, source);
    if (!config) throw new StateError(`${source} has no 'config' in its metadata`);
    const n = new Network(config, { ...networkOptions, init: false });
    verifyConfig?.(n.config);
    // Every view first, then the bytes: on CUDA each view is a host copy made when asked.
    const into = new Map<string, Uint8Array>();
    const known = new Set(['rng.state']);
    for (const p of n.params) {
      if (checkParam(header.entries.get(p.name), p.name, p.shape, true, source)) into.set(p.name, bytesOf(n.weight(p.name)));
      const m = `momentum.${p.name}`;
      if (checkParam(header.entries.get(m), m, p.shape, false, source)) into.set(m, bytesOf(n.momentum(p.name)));
      known.add(p.name).add(m);
    }
    const rng = header.entries.get('rng.state');
    if (rng) checkRng(rng, source);
    // Any other tensor would be read into memory of its own, as large as the header says.
    const stranger = [...header.entries.keys()].find((name) => !known.has(name));
    if (stranger !== undefined) throw new StateError(`${source} has a tensor '${stranger}' that is not part of a network state (the parameters, momentum.<param>, rng.state)`);
    net = n;
    return { into, checksum: header.metadata.checksum !== undefined };
  });
  const sum = file.metadata.checksum;
  if (sum !== undefined && sum !== file.checksum) throw corrupt(source, 'its tensor bytes do not match the checksum in its metadata');
  const rng = file.tensors.get('rng.state');
  if (rng) {
    const [seed, counter] = rng.data as BigInt64Array;
    net!.setRngState(BigInt.asUintN(64, seed), BigInt.asUintN(64, counter));
  }
  return { net: net!, metadata: file.metadata, config: config! };
}
