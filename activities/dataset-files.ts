// Reading a prepared dataset's files (datasets/<name>/ in the store): the manifest, with
// the one error for a dataset that was never prepared, and the mean image.
import { ApplicationFailure } from '@temporalio/common';

import { decodeSafetensors } from '../native/safetensors';
import type { DatasetManifest } from '../workflows/shared';
import { getJson, ObjectStore } from './store';
import { datasetKeys } from './store-layout';

export async function readManifest(store: ObjectStore, dataset: string): Promise<DatasetManifest> {
  const key = datasetKeys(dataset).manifest;
  if (!(await store.head(key))) {
    throw ApplicationFailure.nonRetryable(`dataset '${dataset}' is not prepared in ${store.uri} (no ${key}): run PrepareDataset first`, 'DatasetMissing');
  }
  return getJson<DatasetManifest>(store, key);
}

export async function readMeanImage(store: ObjectStore, dataset: string): Promise<Float32Array> {
  const key = datasetKeys(dataset).meanImage;
  return decodeSafetensors(await store.get(key), key).tensors.get('mean')!.data as Float32Array;
}
