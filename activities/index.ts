// Every activity the workers register. Workflows import this module as types only.
export { writeListing } from './datasets';
export { planDatasetShards, preprocessShard, finalizeDataset } from './prepare';
export { initRun, appendMetrics, latestCheckpoint } from './run';
export { trainEpoch } from './train-epoch';
export { validate } from './validation';
export { datasetStatus, describeModel } from './dataset-info';
export { planEvaluation, evaluateShard, writeEvaluationReport } from './evaluate';
export { promoteCheckpoint } from './promotion';
export { planClassification, classifyShard, writeClassificationSummary } from './classify-shard';
