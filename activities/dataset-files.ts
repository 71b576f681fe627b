// Reading a prepared dataset's files (datasets/<name>/ in the store): the manifest, with
// the one error for a dataset that was never prepared, the mean image and the class names.
import { ApplicationFailure } from '@temporalio/common';

import { decodeSafetensors } from '../native/safetensors';
import type { DatasetManifest } from '../common/contract';
import { getJson, ObjectStore } from './store';
import { datasetKeys } from '../common/store-layout';

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

// The class ids (classes.json: folder names, wnids) when the file holds `classes` of them.
export async function readClassIds(store: ObjectStore, dataset: string, classes: number): Promise<string[] | undefined> {
  const key = datasetKeys(dataset).classes;
  const ids = (await store.head(key)) ? await getJson<unknown>(store, key) : undefined;
  return Array.isArray(ids) && ids.length === classes ? ids.map(String) : undefined;
}

// The human-readable name of each class (names.json; else the class ids of classes.json;
// else "class <i>"), for `classes` classes.
export async function readClassNames(store: ObjectStore, dataset: string, classes: number): Promise<string[]> {
  const keys = datasetKeys(dataset);
  for (const key of [keys.names, keys.classes]) {
    if (await store.head(key)) {
      const v = await getJson<unknown>(store, key);
      if (Array.isArray(v) && v.length === classes) return v.map(String);
    }
  }
  return Array.from({ length: classes }, (_, i) => `class ${i}`);
}
