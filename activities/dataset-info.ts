// What TrainAlexNet needs to know before it trains, asked of activities because workflow
// code reads no store and loads no addon: is the dataset prepared, and the model's shape.
import type { DatasetManifest } from '../common/contract';
import { datasetKeys } from '../common/store-layout';
import { modelConfig } from '../native/index';
import { getJson, openStore } from './store';

// Whether datasets/<name>/ is prepared in the store, and what the workflow needs of it.
export async function datasetStatus(input: { store: string; name: string }): Promise<{ prepared: boolean; classes: number; imageSize: number; splits: string[] }> {
  const store = openStore(input.store);
  const key = datasetKeys(input.name).manifest;
  if (!(await store.head(key))) return { prepared: false, classes: 0, imageSize: 0, splits: [] };
  const m = await getJson<DatasetManifest>(store, key);
  return { prepared: true, classes: m.classes, imageSize: m.imageSize, splits: Object.keys(m.splits) };
}

// A built-in model's input size and class count (workflow code cannot load the addon).
export async function describeModel(input: { model: string; classes: number }): Promise<{ classes: number; inputSize: number }> {
  const cfg = modelConfig(input.model, { classes: input.classes });
  return { classes: cfg.classes, inputSize: cfg.input.height };
}
