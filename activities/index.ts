// Every activity the CPU worker registers. Workflows import this module as types only.
export { writeListing } from './datasets';
export { planDatasetShards, preprocessShard, finalizeDataset } from './prepare';
