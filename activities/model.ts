// The model that inference loads: a checkpoint plus what inference needs around it (the
// class ids and names, the preprocessing: image size S, resize kernel, crop; the mean
// image), resolved from a run (its promoted checkpoint in serving.json, else latest.json)
// or a checkpoint key, and the dataset the run recorded in run.json. Stateless: every
// worker or server loads it from the store; one process keeps the models it loaded, one
// per checkpoint and device.
import { ApplicationFailure } from '@temporalio/common';

import type { ServingPointer } from '../common/contract';
import { CHECKPOINT_KEY_FORM, parseCheckpointKey, runKeys } from '../common/store-layout';
import type { Device, NetConfig, Network, NetworkOptions, Precision } from '../native/index';
import { readStateNetwork } from '../native/state';
import { checkConfigAgainstRun, readLatest, readRunRecord } from './checkpoint';
import { readClassIds, readClassNames, readManifest, readMeanImage } from './dataset-files';
import { readServing } from './promotion';
import { openStore, type ObjectStore } from './store';

export interface ModelSource {
  store: string;            // the store URI the run lives in
  run?: string;             // a run: its serving.json, else its latest.json
  checkpoint?: string;      // a checkpoint key (overrides the run's pointers)
  datasetName?: string;     // only for runs that predate run.json
  device?: Device;
  threads?: number;
  precision?: Precision;    // the GEMMs' inputs (NetworkOptions.precision); default fp32 on the CPU
}

export interface ResolvedCheckpoint {
  key: string;
  runId: string;
  // Where the key came from: the run's promoted checkpoint, its newest, or given.
  from: 'serving' | 'latest' | 'checkpoint';
  serving?: ServingPointer;
}

export interface InferenceModel {
  checkpoint: ResolvedCheckpoint;
  datasetName: string;
  classIds: string[];       // index = class; the dataset's class folder names / wnids
  classNames: string[];     // human-readable names
  imageSize: number;        // S: shorter side resized to S, central SxS
  crop: number;             // the network's input side
  resizeKernel: 'lanczos3' | 'cubic' | 'linear';
  mean: Float32Array;       // (S, S, 3) mean training image
  net: Network;
  loadedAt: string;
}

// One line for logs and replies: run, checkpoint and where it came from.
export function describeModel(m: InferenceModel): string {
  const from = m.checkpoint.from === 'serving' ? 'promoted in serving.json' : m.checkpoint.from === 'latest' ? 'newest in latest.json; nothing promoted' : 'given';
  return `run ${m.checkpoint.runId}: ${m.checkpoint.key} (${from}), dataset ${m.datasetName}, ${m.classIds.length} classes, S=${m.imageSize}, crop ${m.crop}`;
}

const fail = (message: string, type: string) => ApplicationFailure.nonRetryable(message, type);

// The checkpoint a model source names, without loading it.
export async function resolveCheckpoint(store: ObjectStore, source: Pick<ModelSource, 'run' | 'checkpoint'>): Promise<ResolvedCheckpoint> {
  if (source.checkpoint) {
    const parsed = parseCheckpointKey(source.checkpoint);
    if (!parsed) throw fail(`checkpoint '${source.checkpoint}' is not a checkpoint key (${CHECKPOINT_KEY_FORM})`, 'InvalidInput');
    if (source.run && source.run !== parsed.runId) throw fail(`checkpoint ${source.checkpoint} belongs to run '${parsed.runId}', not '${source.run}'`, 'InvalidInput');
    if (!(await store.head(source.checkpoint))) throw fail(`checkpoint ${source.checkpoint} does not exist in ${store.uri}`, 'CheckpointMissing');
    return { key: source.checkpoint, runId: parsed.runId, from: 'checkpoint' };
  }
  if (!source.run) throw fail('a model needs a run (--run) or a checkpoint key (--checkpoint)', 'InvalidInput');
  const keys = runKeys(source.run);
  const serving = await readServing(store, source.run);
  if (serving) {
    if (await store.head(serving.checkpoint)) return { key: serving.checkpoint, runId: source.run, from: 'serving', serving };
    throw fail(`run ${source.run}: serving.json names ${serving.checkpoint}, which is not in ${store.uri}; promote another checkpoint (alexnet eval --promote) or pass --checkpoint`, 'CheckpointMissing');
  }
  const latest = await readLatest(store, source.run);
  if (!latest) throw fail(`run '${source.run}' has no checkpoint in ${store.uri} (no ${keys.latest}): train it first, or check --store and --run`, 'CheckpointMissing');
  return { key: latest.key, runId: source.run, from: 'latest' };
}

// The dataset a run trained on, from its run.json (undefined for runs that predate it).
export async function runDataset(store: ObjectStore, runId: string): Promise<string | undefined> {
  return (await readRunRecord(store, runId))?.datasetName;
}

// A resolved checkpoint's network, streamed from the store, its config checked against the
// run's run.json where the run has one (checkConfigAgainstRun) before any weights are read.
export async function readCheckpointNetwork(store: ObjectStore, checkpoint: ResolvedCheckpoint, options: Pick<NetworkOptions, 'threads' | 'device' | 'precision'> = {}): Promise<{ net: Network; metadata: Record<string, string> }> {
  const record = await readRunRecord(store, checkpoint.runId);
  const verifyConfig = record && ((config: NetConfig) => checkConfigAgainstRun(config, record, checkpoint.runId, checkpoint.key));
  return readStateNetwork(await store.getStream(checkpoint.key), checkpoint.key, { ...options, verifyConfig });
}

async function datasetOf(store: ObjectStore, runId: string, given?: string): Promise<string> {
  const name = given ?? await runDataset(store, runId);
  if (name) return name;
  const key = runKeys(runId).record;
  throw fail(`run '${runId}' has no ${key} (it was trained before runs recorded their dataset): pass the dataset's name (--dataset-name)`, 'InvalidInput');
}

async function loadModel(source: ModelSource, checkpoint: ResolvedCheckpoint): Promise<InferenceModel> {
  const store = openStore(source.store);
  const datasetName = await datasetOf(store, checkpoint.runId, source.datasetName);
  const manifest = await readManifest(store, datasetName);
  const [{ net }, mean, classIds, classNames] = await Promise.all([
    readCheckpointNetwork(store, checkpoint, { threads: source.threads, device: source.device, precision: source.precision }),
    readMeanImage(store, datasetName),
    readClassIds(store, datasetName, manifest.classes),
    readClassNames(store, datasetName, manifest.classes),
  ]);
  const classes = net.config.classes;
  if (classes !== manifest.classes) {
    throw fail(`checkpoint ${checkpoint.key} has ${classes} classes but dataset '${datasetName}' has ${manifest.classes}: pass the dataset the run trained on (--dataset-name)`, 'InvalidInput');
  }
  const crop = net.config.input.height;
  if (crop > manifest.imageSize) throw fail(`checkpoint ${checkpoint.key} takes ${crop}x${crop} inputs, larger than dataset '${datasetName}''s ${manifest.imageSize}x${manifest.imageSize} images`, 'InvalidInput');
  return {
    checkpoint, datasetName, classIds: classIds ?? classNames, classNames,
    imageSize: manifest.imageSize, crop, resizeKernel: manifest.resizeKernel ?? 'lanczos3', mean, net, loadedAt: new Date().toISOString(),
  };
}

// One process keeps the last few models it loaded, by store, checkpoint and device, so
// concurrent requests or activities for one checkpoint share one network (its calls queue).
const MODEL_CACHE_SIZE = 2;
const cache = new Map<string, Promise<InferenceModel>>();

export async function loadInferenceModel(source: ModelSource): Promise<InferenceModel> {
  const checkpoint = await resolveCheckpoint(openStore(source.store), source);
  const id = JSON.stringify([source.store, checkpoint.key, source.device ?? '', source.threads ?? 0, source.precision ?? '', source.datasetName ?? '']);
  let model = cache.get(id);
  if (!model) {
    model = loadModel(source, checkpoint);
    cache.set(id, model);
    model.catch(() => cache.delete(id));
    while (cache.size > MODEL_CACHE_SIZE) cache.delete(cache.keys().next().value!);
  }
  const loaded = await model;
  // The same checkpoint reached another way (e.g. now promoted): say so, share the network.
  return loaded.checkpoint.from === checkpoint.from ? loaded : { ...loaded, checkpoint };
}
