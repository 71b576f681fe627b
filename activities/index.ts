// Every activity the workers register. Workflows import this module as types only.
export { writeListing } from './datasets';
export { planDatasetShards, preprocessShard, finalizeDataset } from './prepare';
export { initRun, trainEpoch, validate, appendMetrics, datasetStatus, describeModel, latestCheckpoint } from './train';
export { planEvaluation, evaluateShard, writeEvaluationReport } from './evaluate';
