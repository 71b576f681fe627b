// Fine-tuning's start: another run's (or checkpoint's, or file's) weights copied into a new
// run's initial network, except the layers drawn afresh (reinit: by default the classifier
// when the class count differs). Everything is checked before initRun writes anything: the
// source exists and verifies, every layer kept has the new network's shape, every layer
// named in reinit or lrMultipliers is one of the network's.
import { ApplicationFailure } from '@temporalio/common';

import type { InitFrom } from '../common/contract';
import { refuseUnknownFields } from '../common/validate';
import { parameterLayers, type NetConfig, type Network } from '../native/index';
import { SafetensorsError } from '../native/safetensors';
import { decodeState, StateError } from '../native/state';
import { resolveCheckpoint } from './model';
import { openStore, type ObjectStore } from './store';

const invalidInput = (message: string) => ApplicationFailure.nonRetryable(message, 'InvalidInput');

// The source's tensors, as read and verified, and where they came from.
export interface InitSource {
  source: InitFrom;
  from: string;         // the checkpoint key, or the file's URI
  sourceRun?: string;   // the run it belongs to, when it is a checkpoint
  tensors: Map<string, { dtype: string; shape: number[]; data: ArrayBufferView }>;
  classes?: number;     // the source's class count, when its config says
}

// The object a URI names (s3://bucket/dir/file, file:///dir/file): its store and key.
function objectAt(uri: string): { store: ObjectStore; key: string } {
  const cut = uri.lastIndexOf('/');
  if (cut < 0 || cut === uri.length - 1) throw invalidInput(`initFrom.weights '${uri}' does not name a file (s3://bucket/path/weights.safetensors or file:///path/weights.safetensors)`);
  return { store: openStore(uri.slice(0, cut)), key: uri.slice(cut + 1) };
}

// Reads and verifies the source of initFrom in `storeUri` (runs and checkpoint keys) or
// anywhere (weights URIs).
export async function readInitSource(storeUri: string, source: InitFrom): Promise<InitSource> {
  let store: ObjectStore, key: string, from: string, sourceRun: string | undefined;
  if ('weights' in source) {
    ({ store, key } = objectAt(source.weights));
    from = source.weights;
    if (!(await store.head(key))) throw ApplicationFailure.nonRetryable(`initFrom.weights: ${source.weights} does not exist`, 'CheckpointMissing');
  } else {
    store = openStore(storeUri);
    // A run: its promoted checkpoint (serving.json), else its newest; or the key given.
    const resolved = await resolveCheckpoint(store, 'run' in source ? { run: source.run } : { checkpoint: source.checkpoint });
    ({ key } = resolved);
    from = key;
    sourceRun = resolved.runId;
  }
  try {
    const file = decodeState(await store.get(key), from);
    return { source, from, sourceRun, tensors: file.tensors, classes: file.config?.classes };
  } catch (e) {
    if (e instanceof StateError || e instanceof SafetensorsError) throw ApplicationFailure.nonRetryable(`initFrom: ${e.message}`, 'CorruptState');
    throw e;
  }
}

// The layers drawn afresh: those given (each a layer of the network), else the classifier
// (the last layer with parameters) when the class counts differ, else none.
export function reinitLayers(config: NetConfig, source: Pick<InitSource, 'classes'>, given?: readonly string[]): string[] {
  const layers = parameterLayers(config);
  if (given) {
    for (const name of given) refuseUnknownFields('reinit', { [name]: true }, layers, `reinit (the layers of ${config.name ?? 'the network'} with parameters)`, 'layer');
    return [...given];
  }
  return source.classes !== undefined && source.classes !== config.classes ? [layers[layers.length - 1]] : [];
}

// Checks that every layer kept from the source has its tensors with the network's shapes,
// naming the first that does not and what to do; throws before anything is copied.
export function checkInitSource(net: Network, source: InitSource, reinit: readonly string[]): void {
  for (const p of net.params) {
    const layer = p.name.slice(0, p.name.lastIndexOf('.'));
    if (reinit.includes(layer)) continue;
    const t = source.tensors.get(p.name);
    if (!t) throw invalidInput(`initFrom ${source.from} has no tensor '${p.name}' (the network needs float32 [${p.shape}]): it is another architecture; add '${layer}' to reinit to draw it afresh`);
    if (t.dtype !== 'F32' || t.shape.join() !== p.shape.join()) {
      throw invalidInput(`initFrom ${source.from}: tensor '${p.name}' is ${t.dtype} [${t.shape}] but the network needs F32 [${p.shape}] ` +
        `(another architecture or class count); add '${layer}' to reinit to draw it afresh`);
    }
  }
}

// Copies the source's weights into `net` for every layer not in reinit (checkInitSource
// first). Momentum stays zero and the RNG state is the new run's.
export function copyInitWeights(net: Network, source: InitSource, reinit: readonly string[]): void {
  checkInitSource(net, source, reinit);
  for (const p of net.params) {
    const layer = p.name.slice(0, p.name.lastIndexOf('.'));
    if (reinit.includes(layer)) continue;
    net.weight(p.name).set(source.tensors.get(p.name)!.data as Float32Array);
  }
}
