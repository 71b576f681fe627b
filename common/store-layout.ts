// Where everything lives in a store (the same under s3://bucket/prefix and file:///dir).
// One place, so no module spells a key by hand.

export function datasetKeys(name: string) {
  const root = `datasets/${name}`;
  return {
    root,
    manifest: `${root}/manifest.json`,
    classes: `${root}/classes.json`,
    names: `${root}/names.json`,  // human-readable class names (synset words)
    stats: `${root}/stats.json`,
    meanImage: `${root}/mean.safetensors`,
    listing: (split: string) => `${root}/listing/${split}.jsonl`,
    shard: (split: string, i: number) => `${root}/shards/${split}/${pad(i)}.json`,
    batch: (split: string, i: number) => `${root}/batches/${split}/${pad(i)}.bin`,
    shardReport: (split: string, i: number) => `${root}/reports/${split}/${pad(i)}.json`,
    shardStats: (split: string, i: number) => `${root}/stat-sums/${split}/${pad(i)}.safetensors`,
  };
}

export function runKeys(runId: string) {
  const root = `runs/${runId}`;
  return {
    root,
    latest: `${root}/latest.json`,
    // What the run trained on (dataset, model), written by initRun: inference reads it.
    record: `${root}/run.json`,
    // The promoted checkpoint inference serves (EvaluateAlexNet with promote), written last.
    serving: `${root}/serving.json`,
    // One ClassifyImages job's output: part-<i>.jsonl and summary.json.
    predictions: (job: string) => `${root}/predictions/${job.replace(/[^A-Za-z0-9._-]/g, '_')}/`,
    metrics: `${root}/metrics.jsonl`,
    // The last training attempt of an epoch: where it started and how it ended (trainEpoch).
    attempts: (epoch: number) => `${root}/attempts/${pad(epoch)}.json`,
    reports: `${root}/reports/`,
    // One evaluation's report folder: <start time>-<split>-<crops>crop-<first 8 of the workflow run id>.
    report: (startTime: Date, split: string, crops: number, workflowRunId: string) =>
      `${root}/reports/${startTime.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}-${split}-${crops}crop-${workflowRunId.slice(0, 8)}`,
    // What each retention pass deleted, named after the checkpoint that triggered it.
    deletions: `${root}/deletions/`,
    deletionLog: (after: string) => `${root}/deletions/${after.replace(/^.*\//, '').replace(/\.safetensors$/, '')}.json`,
    // An evaluation in progress holds its checkpoint against retention (retention.ts).
    holds: `${root}/holds/`,
    hold: (holder: string) => `${root}/holds/${holder.replace(/[^A-Za-z0-9._-]/g, '_')}.json`,
    // TensorBoard's event files (activities/tensorboard.ts): `tensorboard --logdir` on this
    // folder. Named so that key order is step order (TensorBoard reads a folder's files in
    // name order): in each epoch the ranges of batches between checkpoints, each by its
    // first batch, the checkpoint at a cursor before the range that starts there
    // ('checkpoint' < 'train'), the epoch's validation after them all ('val' > digits).
    tensorboard: `${root}/tensorboard/`,
    trainEvents: (epoch: number, firstBatch: number) => `${root}/tensorboard/events.out.tfevents.${pad(epoch)}-${pad(firstBatch, 7)}.train.alexnet`,
    checkpointEvents: (epoch: number, batch: number) => `${root}/tensorboard/events.out.tfevents.${pad(epoch)}-${pad(batch, 7)}.checkpoint.alexnet`,
    validationEvents: (epoch: number) => `${root}/tensorboard/events.out.tfevents.${pad(epoch)}-val.alexnet`,
    checkpoints: `${root}/checkpoints/`,
    // Sorted by key = sorted by (epoch, batch, attempt): the padding makes it so.
    checkpoint: (epoch: number, batch: number, attempt: number) =>
      `${root}/checkpoints/${pad(epoch)}-${pad(batch, 7)}-${pad(attempt, 3)}.safetensors`,
  };
}

// Zero-padded so that listing order is numeric order.
const pad = (i: number, width = 5) => String(i).padStart(width, '0');

// The files of one evaluation report under its folder (runKeys().report).
export function reportKeys(prefix: string) {
  return {
    json: `${prefix}/report.json`,
    markdown: `${prefix}/report.md`,
    html: `${prefix}/report.html`,
    // A shard's partial result, summed into the report.
    partial: (split: string, shard: number) => `${prefix}/shards/${split}-${pad(shard)}.json`,
  };
}

export interface CheckpointKey {
  runId: string;
  epoch: number;
  batch: number;
  attempt: number;
}

// The run and cursor a checkpoint key names (runKeys().checkpoint), or undefined when the
// key is not one.
export function parseCheckpointKey(key: string): CheckpointKey | undefined {
  const m = /^runs\/([^/]+)\/checkpoints\/(\d+)-(\d+)-(\d+)\.safetensors$/.exec(key);
  return m ? { runId: m[1], epoch: Number(m[2]), batch: Number(m[3]), attempt: Number(m[4]) } : undefined;
}

export const CHECKPOINT_KEY_FORM = 'runs/<runId>/checkpoints/<epoch>-<batch>-<attempt>.safetensors';

// The dataset's manifest as a URI a user can open (for summaries printed by the CLI).
export function manifestUri(storeUri: string, datasetName: string): string {
  return `${storeUri.replace(/\/+$/, '')}/${datasetKeys(datasetName).manifest}`;
}

// One ClassifyImages job's files under its output prefix (runKeys().predictions(job) by
// default): the listing cut into shards, one part per shard (a JSON line per listed image,
// in key order), the part's report (written after the part: the part is complete), and
// the summary.
export function predictionKeys(output: string) {
  const root = output.replace(/\/+$/, '');
  return {
    root: `${root}/`,
    shard: (i: number) => `${root}/shards/${pad(i)}.jsonl`,
    part: (i: number) => `${root}/part-${pad(i)}.jsonl`,
    // With ClassifyImagesInput.features: the part's image features (activities/features.ts).
    features: (i: number) => `${root}/features-${pad(i)}.safetensors`,
    partReport: (i: number) => `${root}/reports/${pad(i)}.json`,
    summary: `${root}/summary.json`,
  };
}
