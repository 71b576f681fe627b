// Names and types shared by workflows, activities, workers and clients. Pure TypeScript
// (no Node APIs), so workflow code can import it.

export const TASK_QUEUE = 'alexnet';          // workflows and CPU activities
export const GPU_TASK_QUEUE = 'alexnet-gpu';  // training and evaluation on GPU workers

export interface PrepareDatasetInput {
  dataset: string;      // URI of the images (s3://..., file:///..., or a path)
  store: string;        // URI of the store that receives datasets/<name>/...
  name?: string;        // dataset name in the store; default: the last path segment of `dataset`
  imageSize?: number;   // S: shorter side resized to S, central SxS crop (paper: 256)
  shardSize?: number;   // images per shard and batch file (default 1000)
  seed?: number;        // shuffle seed of the shard plan (default 0)
  maxParallel?: number; // preprocessing activities in flight at once (default 8)
  maxPixels?: number;   // decompression-bomb guard (default 100M pixels)
}

export interface PreprocessShardInput {
  dataset: string;
  store: string;
  name: string;
  split: string;
  shard: number;
  imageSize: number;
  maxPixels?: number;
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
  splits: Record<string, { shards: number; images: number; skipped: number; listed: number; skippedByReason: Record<string, number> }>;
  statsKey: string;
  createdAt: string;
}

export interface PrepareDatasetResult {
  manifest: DatasetManifest;
  skipped: { key: string; reason: string }[];  // a sample; the shard reports have all
  shardsReused: number;                         // already done and verified (a re-run)
  seconds: number;
}
