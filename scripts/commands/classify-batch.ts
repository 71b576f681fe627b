// alexnet classify-batch: starts ClassifyImages (batch inference over a folder or prefix
// of images, on the workers) through the Temporal client, follows it with a progress bar
// and prints the summary (summary.json's contents) as one JSON line. The same workflow
// runs from the official CLI:
//   temporal workflow start --type ClassifyImages --task-queue alexnet --input '{...}'
import { FEATURE_LAYERS, type ClassifyImagesInput, type FeatureLayer } from '../../common/contract';
import { START_FLAGS, START_HELP, START_USAGE, startAndFollow } from '../start-and-follow';
import { CONNECTION_HELP } from '../temporal-connection';
import { intOption, parse, required, UsageError } from './args';

const HELP = `usage: alexnet classify-batch --source URI --store URI (--run RUN_ID | --checkpoint KEY)
                              [--output PREFIX] [--top 5] [--crops 1|10] [--shard-size 1000] [--parallel 4]
                              [--device cpu|cuda] [--threads N] [--features fc7|fc6]
                              ${START_USAGE}

Starts ClassifyImages (a worker must run: alexnet worker): every image under --source (a
folder, file:///dir or s3://bucket/prefix, at any depth) is classified by the workers, in
shards of --shard-size images, --parallel at once. The model is the run's promoted
checkpoint (runs/RUN_ID/serving.json), else its newest (latest.json), or --checkpoint KEY,
resolved once when the workflow starts; preprocessing is evaluation's (--crops 1: centre,
10: the paper's ten patches averaged).

Output in the store under --output (default runs/RUN_ID/predictions/WORKFLOW_ID/):
part-00000.jsonl ... one line per image in key order, {"key", "top": [{"class", "name",
"probability"}, ...]}, or {"key", "error"} for a file that cannot be classified (empty,
truncated, not an image, decompression bomb: skipped with its reason, never fatal), and
summary.json. Follows the job to the end and prints the summary as one JSON line:
  {"workflowId","images","skipped","listed","skippedByReason","skippedFiles","parts","output",
   "summaryKey","checkpoint","seconds","imagesPerSecond",...}

--features fc7 (or fc6) also writes each part's image features, the layer's post-ReLU
activations of the same forward (centre crop only: --crops 1), to features-00000.safetensors
... beside the parts, and the summary gains {"features": {"layer", "vectors", "dimensions"}}:
the output prefix is then an index for alexnet neighbours.

${START_HELP}

${CONNECTION_HELP}`;

const FLAGS = {
  source: { type: 'string' }, store: { type: 'string' }, run: { type: 'string' }, checkpoint: { type: 'string' },
  output: { type: 'string' }, top: { type: 'string' }, crops: { type: 'string' }, 'shard-size': { type: 'string' },
  parallel: { type: 'string' }, device: { type: 'string' }, threads: { type: 'string' }, features: { type: 'string' },
} as const;

export async function classifyBatch(argv: string[]): Promise<void> {
  const o = parse(argv, { ...START_FLAGS, ...FLAGS }, HELP);
  if (!!o.run === !!o.checkpoint) throw new UsageError(`give one of --run RUN_ID or --checkpoint KEY\n\n${HELP}`);
  const crops = intOption(o.crops, 'crops', 1);
  if (crops !== 1 && crops !== 10) throw new UsageError(`--crops must be 1 or 10, got '${o.crops}'`);
  if (o.device !== undefined && o.device !== 'cpu' && o.device !== 'cuda') throw new UsageError(`--device must be cpu or cuda, got '${o.device}'`);
  if (o.features !== undefined && !(FEATURE_LAYERS as readonly string[]).includes(o.features)) throw new UsageError(`--features must be one of ${FEATURE_LAYERS.join(', ')}, got '${o.features}'`);
  if (o.features !== undefined && crops !== 1) throw new UsageError(`--features needs --crops 1 (the features are the centre crop's), got --crops ${crops}`);
  const input: ClassifyImagesInput = {
    store: required(o.store, 'store', HELP),
    source: required(o.source, 'source', HELP),
    checkpoint: o.run ? { run: o.run } : o.checkpoint!,
    ...(o.output !== undefined ? { output: o.output } : {}),
    topK: intOption(o.top, 'top', 5),
    crops,
    shardSize: intOption(o['shard-size'], 'shard-size', 1000),
    maxParallel: intOption(o.parallel, 'parallel', 4),
    device: (o.device ?? 'cpu') as 'cpu' | 'cuda',
    ...(o.threads !== undefined ? { threads: intOption(o.threads, 'threads', 1) } : {}),
    ...(o.features !== undefined ? { features: o.features as FeatureLayer } : {}),
  };
  await startAndFollow(o, 'ClassifyImages', input, { workflowId: `classify-${o.run ?? 'checkpoint'}-${Date.now()}` });
}
