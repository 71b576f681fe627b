// Names and types shared by workflows, activities, workers and clients. Pure TypeScript
// (no Node APIs), so workflow code can import it.

import type { LrPolicy, LrState } from './lr-policy';

export const TASK_QUEUE = 'alexnet';          // workflows and CPU activities
export const GPU_TASK_QUEUE = 'alexnet-gpu';  // training and evaluation on GPU workers

// sharp's resampling kernels we offer for the shorter-side resize: lanczos3 (sharp's
// default, the sharpest), cubic, and linear (what Pillow's BILINEAR and torchvision do).
export const RESIZE_KERNELS = ['lanczos3', 'cubic', 'linear'] as const;
export type ResizeKernel = (typeof RESIZE_KERNELS)[number];

// A workflow input's fields as a run-time list, for refusing the ones it does not know
// (common/validate.ts inputObject). The literal must name every field of T and no other:
// a field added to an input's interface and not to its list fails to compile.
const fieldsOf = <T>(all: Record<keyof T, true>): readonly (keyof T & string)[] => Object.keys(all) as (keyof T & string)[];

export interface PrepareDatasetInput {
  dataset: string;      // URI of the images (s3://..., file:///..., or a path)
  store: string;        // URI of the store that receives datasets/<name>/...
  name?: string;        // dataset name in the store; default: the last path segment of `dataset`
  imageSize?: number;   // S: shorter side resized to S, central SxS crop (paper: 256)
  shardSize?: number;   // images per shard and batch file (default 1000)
  seed?: number;        // shuffle seed of the shard plan (default 0)
  maxParallel?: number; // preprocessing activities in flight at once (default 8)
  maxPixels?: number;   // decompression-bomb guard (default 100M pixels)
  resizeKernel?: ResizeKernel; // default lanczos3
  // A dataset without a val split gets one carved out of train: this fraction of each
  // class, chosen by `seed` (default DEFAULT_VALIDATION_FRACTION, 1/12).
  validationFraction?: number;
}

export const PREPARE_DATASET_INPUT_FIELDS = fieldsOf<PrepareDatasetInput>({
  dataset: true, store: true, name: true, imageSize: true, shardSize: true, seed: true, maxParallel: true, maxPixels: true,
  resizeKernel: true, validationFraction: true,
});

// Training validates on 'val' only, never on 'test'; a dataset that ships no val split
// gets 1/12 of each training class held out as one.
export const DEFAULT_VALIDATION_FRACTION = 1 / 12;

// How a dataset's 'val' split was made when it was carved out of train.
export interface CarvedValidation {
  from: 'train';
  fraction: number;
  seed: number;
  images: number;   // listed into 'val'
}

// The split an evaluation reads when none is named: the held-out test split when 'val'
// was carved out of train (a carved val steered training), else 'val', else 'test'.
export function defaultEvaluationSplit(splits: readonly string[], carved: boolean): string | undefined {
  if (carved && splits.includes('test')) return 'test';
  return splits.includes('val') ? 'val' : splits.includes('test') ? 'test' : undefined;
}

export interface PreprocessShardInput {
  dataset: string;
  store: string;
  name: string;
  split: string;
  shard: number;
  imageSize: number;
  maxPixels?: number;
  resizeKernel?: ResizeKernel;
}

export interface SplitSummary {
  split: string;
  images: number;  // listed
  shards: number;
}

export interface ShardSummary {
  split: string;
  shard: number;
  images: number;       // written to the batch file
  batchKey: string;
  skippedCount: number;
  skippedSample?: { key: string; reason: string }[];
  convertedCount?: number;
  seconds: number;
  reused: boolean;      // the shard was already done and verified
}

export interface DatasetManifest {
  name: string;
  source: string;
  imageSize: number;
  seed: number;
  shardSize: number;
  classes: number;
  splits: Record<string, { shards: number; images: number; skipped: number; listed: number; skippedByReason: Record<string, number>; shardImages: number[] }>;
  statsKey: string;
  createdAt: string;
  resizeKernel?: ResizeKernel;  // absent in manifests written before it existed: lanczos3
  carvedValidation?: CarvedValidation; // 'val' was held out of 'train' (see carveValidation)
}

export interface PrepareProgress {
  phase: 'listing' | 'planning' | 'preprocessing' | 'merging' | 'done';
  shardsDone: number;
  shardsTotal: number;
  imagesDone: number;
  skipped: number;
}

export interface PrepareDatasetResult {
  manifest: DatasetManifest;
  skipped: { key: string; reason: string }[];  // a sample; the shard reports have all
  shardsReused: number;                         // already done and verified (a re-run)
  seconds: number;
}

export interface TrainEpochInput {
  runId: string;
  store: string;
  dataset: string;        // dataset name in the store (datasets/<name>/)
  trainSplit: string;
  epoch: number;          // 0-based
  lr: number;
  batchSize: number;
  seed: number;           // data order and augmentation
  crop: number;           // network input size (random crops of the S x S images)
  pcaSigma: number;       // the paper's 0.1; 0 turns colour noise off
  checkpointEvery: number;// batches between checkpoints (and one at the epoch's end)
  stallBatches: number;   // flag a stall when the loss is still near ln(classes) after this many batches
  threads?: number;
  precision?: GemmPrecision; // GEMM inputs; absent: fp32 on the CPU, the GPU worker's on CUDA (ALEXNET_CUDA_PRECISION, else fp32)
  // Attempts in a row that leave no newer checkpoint before the epoch fails (NoProgress);
  // default DEFAULT_MAX_FAILURES_PER_CHECKPOINT.
  maxFailuresPerCheckpoint?: number;
  retention?: RetentionPolicy;  // which checkpoints to keep; absent: DEFAULT_RETENTION
  lrMultipliers?: Record<string, number>;  // per layer a factor on lr (TrainAlexNetInput.lrMultipliers)
}

// Which checkpoints a run keeps (the rest are deleted once latest.json has moved past
// them). Always kept besides: the initial one, the one latest.json names and anything
// newer, the best epoch's last checkpoint (lowest validation top-1 error), and any
// checkpoint a report names or a running evaluation holds.
export interface RetentionPolicy {
  keepLast?: number;        // the newest mid-epoch checkpoints kept before latest.json's (default 2)
  keepEpochEvery?: number;  // each M-th epoch's last checkpoint kept (default 1: every epoch's; 0: none)
  keepAll?: boolean;        // delete nothing (default false)
}

export const RETENTION_POLICY_FIELDS = fieldsOf<RetentionPolicy>({ keepLast: true, keepEpochEvery: true, keepAll: true });
export const DEFAULT_RETENTION: Required<RetentionPolicy> = { keepLast: 2, keepEpochEvery: 1, keepAll: false };

export const DEFAULT_MAX_FAILURES_PER_CHECKPOINT = 5;

// Sent by trainEpoch to its workflow when an operator pauses the activity (`temporal
// activity pause`) and when it runs again after `unpause`, so the progress query shows it
// (the workflow itself cannot see activity operations).
export const TRAINING_STATE_SIGNAL = 'trainingState';
export interface TrainingState { phase: 'paused' | 'training'; checkpoint?: string }

// What the CUDA backend's GEMMs are fed (weights, activations and the update stay fp32).
export const GEMM_PRECISIONS = ['fp32', 'tf32', 'bf16'] as const;
export type GemmPrecision = typeof GEMM_PRECISIONS[number];

export interface EpochResult {
  epoch: number;
  batches: number;          // trained in this epoch (all attempts together)
  batchesThisAttempt: number;
  resumedAt: number;        // the batch this attempt started from
  meanLoss: number;         // over this attempt's batches
  recentLoss: number;       // over the last 10 batches
  checkpointKey: string;    // the epoch-end checkpoint
  imagesPerSecond: number;
  nativeSeconds: number;    // inside the native step
  seconds: number;          // the whole attempt
  stalled: boolean;
  warnings: string[];       // e.g. corrupt checkpoints passed over
  checkpointsDeleted?: string[]; // by checkpoint retention during this attempt
}

export interface ValidationResult {
  epoch: number;
  split: string;
  images: number;
  loss: number;
  top1Error: number;
  top5Error: number;
  seconds: number;
}

export interface TrainAlexNetInput {
  store: string;            // URI of the store (datasets/ and runs/ live there)
  datasetName: string;      // datasets/<name>/ in the store
  dataset?: string;         // URI of the images: PrepareDataset runs first when the batches are missing
  model?: string;           // built-in model (alexnet, alexnet-64, alexnet-32, tiny); default alexnet
  classes?: number;         // default: the dataset's
  epochs?: number;          // at most this many (the plateau policy may stop earlier); default 90
  batchSize?: number;       // default 128
  lrPolicy?: unknown;       // {type: 'plateau' | 'step' | 'fixed', ...}; default the paper's plateau rule
  seed?: number;            // initialization, data order, augmentation, dropout; default 0
  imageSize?: number;       // S for PrepareDataset; default 256
  crop?: number;            // network input; default the model's input size
  pcaSigma?: number;        // default 0.1 (the paper's)
  checkpointEvery?: number; // batches; default 100
  stallBatches?: number;    // default 1000
  device?: 'cpu' | 'cuda';  // default cpu
  precision?: GemmPrecision; // GEMM inputs: 'fp32', 'bf16' (CPU: AVX512_BF16 where present) or 'tf32' (cuda only); default fp32 (CPU), the GPU worker's (cuda)
  validationSplit?: string; // default val; never test (held out for EvaluateAlexNet)
  runId?: string;           // default the workflow id
  heartbeatTimeoutSeconds?: number; // how soon a lost training worker is noticed; default 120
  // An epoch whose attempts fail this many times in a row without a newer checkpoint
  // fails the run (NoProgress, naming the checkpoint and the last error); default 5.
  // Attempts that make progress (preemptions, lost workers) are retried every second
  // without limit.
  maxFailuresPerCheckpoint?: number;
  retention?: RetentionPolicy; // checkpoint retention; default DEFAULT_RETENTION (see RetentionPolicy)
  // Fine-tuning: the first weights from another run (its serving.json, else latest.json),
  // a checkpoint key in the same store, or a safetensors file at any URI the store code
  // reads, instead of the paper's random initialisation. Momentum starts at zero.
  initFrom?: InitFrom;
  // Layers drawn afresh (the paper's initialisation, from `seed`) instead of copied; default
  // the classifier (fc8) when the class count differs from the source's, else none.
  reinit?: string[];
  // Per layer a factor on the learning rate the policy decides (Caffe's lr_mult): 0 freezes
  // a layer, 10 is usual for a new one. Layers not named: 1.
  lrMultipliers?: Record<string, number>;
}

// Where a fine-tuned run's first weights come from.
export type InitFrom = { run: string } | { checkpoint: string } | { weights: string };

export const TRAIN_ALEXNET_INPUT_FIELDS = fieldsOf<TrainAlexNetInput>({
  store: true, datasetName: true, dataset: true, model: true, classes: true, epochs: true, batchSize: true, lrPolicy: true,
  seed: true, imageSize: true, crop: true, pcaSigma: true, checkpointEvery: true, stallBatches: true, device: true,
  precision: true, validationSplit: true, runId: true, heartbeatTimeoutSeconds: true, maxFailuresPerCheckpoint: true, retention: true,
  initFrom: true, reinit: true, lrMultipliers: true,
});

// runs/<runId>/run.json: what a run trained on, so inference never asks the user again.
export interface RunRecord {
  runId: string;
  datasetName: string;
  model: string;
  classes: number;
  seed: number;
  createdAt: string;
  // A fine-tuned run: where its first weights came from (the checkpoint key or file URI
  // they were read from), the layers drawn afresh, the per-layer LR factors.
  initFrom?: { source: InitFrom; from: string; sourceRun?: string; reinit: string[] };
  lrMultipliers?: Record<string, number>;
}

// runs/<runId>/serving.json: the checkpoint inference serves, moved by EvaluateAlexNet
// with promote when an evaluation beats the one it names.
export interface ServingPointer {
  checkpoint: string;
  top1Error: number;
  top5Error: number;
  split: string;
  crops: 1 | 10;
  images: number;
  report: string;           // the evaluation's report.json key
  evaluation: string;       // the EvaluateAlexNet workflow id
  promotedAt: string;
  previous?: string;        // the checkpoint it replaced
}

export interface TrainResult {
  runId: string;
  epochs: number;
  stoppedBy: 'epochs' | 'lr-policy' | 'signal';
  lastValidation?: ValidationResult;
  latestCheckpoint?: string;
  lrHistory: TrainProgress['lrHistory'];
}

// What TrainAlexNet's updates answer (setLearningRate; pause, resume, stop).
export interface SetLearningRateResult { lr: number; policy: LrState & { type: LrPolicy['type'] } }
export interface ControlResult { phase: TrainProgress['phase'] }

export interface TrainProgress {
  runId: string;
  phase: 'preparing' | 'training' | 'validating' | 'paused' | 'stopping' | 'done';
  epoch: number;            // current (0-based)
  epochs: number;
  lr: number;
  lastEpoch?: EpochResult;
  lastValidation?: ValidationResult;
  latestCheckpoint?: string;
  stalled: boolean;
  lrHistory: { epoch: number; lr: number; reason: string }[];
}

// --- Evaluation ---------------------------------------------------------------------

export interface EvaluateAlexNetInput {
  store: string;            // URI of the store (datasets/ and runs/ live there)
  // The checkpoint: a key in the store, or a run whose newest checkpoint (latest.json,
  // read when this workflow starts) is evaluated.
  checkpoint: string | { run: string };
  datasetName: string;      // datasets/<name>/ in the store
  split?: string;           // default defaultEvaluationSplit: test when val was carved from train, else val, else test
  crops?: 1 | 10;           // 1: centre crop; 10: the paper's ten patches, softmax averaged (default 10)
  batchSize?: number;       // images per forward (default 128)
  maxParallel?: number;     // evaluation activities in flight at once (default 4)
  device?: 'cpu' | 'cuda';  // which workers evaluate (default cpu)
  threads?: number;
  // Move runs/<run>/serving.json to this checkpoint when its top-1 error beats the one
  // serving.json names on the same split and crops (or none is named). Default false.
  promote?: boolean;
}

export const EVALUATE_ALEXNET_INPUT_FIELDS = fieldsOf<EvaluateAlexNetInput>({
  store: true, checkpoint: true, datasetName: true, split: true, crops: true, batchSize: true, maxParallel: true, device: true,
  threads: true, promote: true,
});

// What promotion did: the checkpoint inference serves after this evaluation, and why.
export interface PromotionResult {
  promoted: boolean;
  serving: string;          // the checkpoint serving.json names now
  reason: string;
}

export interface EvaluateProgress {
  phase: 'planning' | 'evaluating' | 'reporting' | 'promoting' | 'done';
  checkpointKey?: string;
  shardsDone: number;
  shardsTotal: number;
  imagesDone: number;
}

// One shard's evaluation, summed into the report. Per-class arrays are indexed by class.
export interface ShardEvaluation {
  shard: number;
  images: number;
  lossSum: number;          // sum over images of -ln p(true class), p the (crop-averaged) softmax
  top1Errors: number;
  top5Errors: number;
  classImages: number[];
  classTop1Correct: number[];
  classTop5Correct: number[];
  confusion?: number[][];   // [true][predicted], only up to 100 classes
  seconds: number;
}

export interface EvaluationReport {
  runId: string;
  checkpointKey: string;
  epoch: number;            // of the checkpoint
  batch: number;
  model: string;            // the config's name
  dataset: string;
  split: string;
  crops: 1 | 10;
  images: number;           // equals the split's size: every image once
  shards: number;
  loss: number;
  top1Error: number;
  top5Error: number;
  top1Accuracy: number;
  top5Accuracy: number;
  perClass: { index: number; name: string; images: number; top1Accuracy: number; top5Accuracy: number }[];
  confusion?: number[][];   // [true][predicted], only up to 100 classes
  imagesPerSecond: number;  // evaluated images (crops not counted) per second of evaluation
  seconds: number;          // the evaluation's wall time (first shard started to last shard done)
  createdAt: string;        // ISO time the evaluation started
}

// One record of runs/<runId>/metrics.jsonl as TrainAlexNet writes it (kind 'epoch').
export interface EpochMetrics {
  kind: 'epoch';
  epoch: number;
  lr: number;
  train: EpochResult;
  validation?: ValidationResult;
  nextLr?: number;
  lrReason?: string;
}

export interface EvaluateAlexNetResult {
  reportKeys: { json: string; markdown: string; html: string };
  checkpointKey: string;
  images: number;
  top1Error: number;
  top5Error: number;
  top1Accuracy: number;
  top5Accuracy: number;
  seconds: number;
  promotion?: PromotionResult;  // with promote
}

// --- Failures -------------------------------------------------------------------------

// The error types (Error.name, or ApplicationFailure.type) that retrying cannot help: a
// malformed store URI or key, a corrupt or mismatched network state, a dataset layout we
// cannot read. Every activity proxy lists them as non-retryable.
export const NON_RETRYABLE_ERROR_TYPES = ['InvalidStoreUriError', 'InvalidKeyError', 'StateError', 'DatasetLayoutError'];

// --- Batch inference (ClassifyImages) ---------------------------------------------------

export interface ClassifyImagesInput {
  store: string;            // URI of the store the run lives in (and the output goes to)
  // The model: a checkpoint key, or a run (its promoted checkpoint in serving.json, else its
  // newest in latest.json), resolved once when the workflow starts: every shard uses it.
  checkpoint: string | { run: string };
  source: string;           // the images: a folder path, file:///dir or s3://bucket/prefix (any depth)
  output?: string;          // a key prefix in the store; default runs/<run>/predictions/<workflowId>/
  topK?: number;            // classes per image (default 5)
  crops?: 1 | 10;           // 1: centre crop (default); 10: the paper's ten patches, softmax averaged
  shardSize?: number;       // images per shard, part file and activity (default 1000)
  maxParallel?: number;     // classification activities in flight at once (default 4)
  device?: 'cpu' | 'cuda';  // which workers classify (default cpu)
  threads?: number;
  // Also write each part's image features (the layer's post-ReLU activations of the same
  // forward, centre crop only) to features-<i>.safetensors beside it: the output prefix is
  // then an index for `alexnet neighbours`.
  features?: FeatureLayer;
}

// The layers whose activations serve as image features (DeCAF: fc6 and fc7, post-ReLU).
export const FEATURE_LAYERS = ['fc7', 'fc6'] as const;
export type FeatureLayer = (typeof FEATURE_LAYERS)[number];

export const CLASSIFY_IMAGES_INPUT_FIELDS = fieldsOf<ClassifyImagesInput>({
  store: true, checkpoint: true, source: true, output: true, topK: true, crops: true, shardSize: true, maxParallel: true,
  device: true, threads: true, features: true,
});

// The listing and the checkpoint, as planClassification leaves them in the store: the
// listing itself is in <output>/shards/, never in a workflow payload.
export interface ClassificationPlan {
  checkpointKey: string;
  runId: string;
  output: string;           // the output prefix, ending in '/'
  shards: number;
  images: number;           // listed (files with an image extension under the source)
}

// One shard's classification: what its part file holds.
export interface ShardClassification {
  shard: number;
  images: number;           // classified (lines with "top")
  skipped: number;          // refused with a reason (lines with "error")
  skippedByReason: Record<string, number>;
  skippedSample: { key: string; reason: string }[];  // at most 50
  seconds: number;
  reused: boolean;          // the part was already complete for this checkpoint (a retry)
  features?: ShardFeatures; // with ClassifyImagesInput.features: what its features file holds
}

// A features file of ClassifyImages (<output>/features-<i>.safetensors): one vector per
// classified image of the part, in part order.
export interface ShardFeatures {
  layer: FeatureLayer;
  vectors: number;          // = the part's classified images
  dimensions: number;       // the layer's width (4096 for the paper's fc6/fc7)
}

export interface ClassifyProgress {
  phase: 'planning' | 'classifying' | 'summarizing' | 'done';
  checkpointKey?: string;
  output?: string;
  shardsDone: number;
  shardsTotal: number;
  listed: number;
  imagesDone: number;       // classified so far
  skipped: number;          // refused so far
}

// <output>/summary.json, and the workflow's result.
export interface ClassifyImagesResult {
  images: number;           // classified
  skipped: number;          // refused (empty, truncated, not an image, decompression bomb, gone)
  listed: number;           // images + skipped: every listed file exactly once
  skippedByReason: Record<string, number>;
  skippedFiles: { key: string; reason: string }[];  // the first 1000, in key order
  parts: number;            // <output>/part-00000.jsonl ... one per shard
  output: string;
  summaryKey: string;
  checkpoint: string;
  runId: string;
  source: string;
  topK: number;
  crops: 1 | 10;
  seconds: number;          // first shard started to last shard done, as the workflow saw it
  imagesPerSecond: number;  // classified images per second of that
  createdAt: string;        // when the workflow started
  // With ClassifyImagesInput.features: the index the output prefix holds, one
  // features-<i>.safetensors per part, a vector for every classified image.
  features?: ShardFeatures;
}
