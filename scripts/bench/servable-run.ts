// A network saved as a run that inference can load without training: every file
// loadInferenceModel reads (the dataset's manifest, mean image, class ids and names; the
// run's run.json, its checkpoint and latest.json), in a store. For benchmarks and tests of
// serving, which need a model, not a trained one.
import { saveCheckpoint } from '../../activities/checkpoint';
import { openStore } from '../../activities/store';
import type { DatasetManifest, RunRecord } from '../../common/contract';
import { datasetKeys, runKeys } from '../../common/store-layout';
import type { Network } from '../../native/index';
import { encodeSafetensors, tensor } from '../../native/safetensors';

export interface ServableRun {
  run: string;
  dataset: string;
  net: Network;
  imageSize: number;      // S of the dataset's images
  classIds: string[];     // also the class names
  mean: Float32Array;     // (S, S, 3) mean image
  source: string;         // what made it, for the manifest
}

export async function writeServableRun(store: string, r: ServableRun): Promise<void> {
  const s = openStore(store);
  const keys = datasetKeys(r.dataset);
  const manifest: DatasetManifest = {
    name: r.dataset, source: r.source, imageSize: r.imageSize, seed: 0, shardSize: 1, classes: r.classIds.length,
    splits: {}, statsKey: keys.stats, createdAt: new Date().toISOString(), resizeKernel: 'lanczos3',
  };
  await s.put(keys.meanImage, encodeSafetensors({ mean: tensor('F32', [r.imageSize, r.imageSize, 3], r.mean) }, { layout: 'HWC', units: 'pixel values 0..255' }));
  await s.put(keys.classes, JSON.stringify(r.classIds));
  await s.put(keys.names, JSON.stringify(r.classIds));
  await s.put(keys.manifest, JSON.stringify(manifest));
  const record: RunRecord = { runId: r.run, datasetName: r.dataset, model: r.net.config.name ?? 'custom', classes: r.classIds.length, seed: 1, createdAt: new Date().toISOString() };
  await s.put(runKeys(r.run).record, JSON.stringify(record));
  await saveCheckpoint(s, r.run, r.net, { epoch: 0, batch: 0 }, { attempt: 1, lr: 0 });
}
