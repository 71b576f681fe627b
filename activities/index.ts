// Every activity the CPU worker registers. Workflows import this module as types only.
export { listDataset } from './list-dataset';
export { planDatasetShards, preprocessShard, finalizeDataset } from './prepare';
