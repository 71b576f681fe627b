// alexnet neighbours: image retrieval in feature space (the paper's Figure 4): ranks the
// images of an index (a ClassifyImages output written with --features) by Euclidean
// distance to each query's features, in this process.
import { checkIndexQuery, nearestNeighbours, openFeatureIndex } from '../../activities/features';
import { describeModel, loadInferenceModel } from '../../activities/model';
import { openStore } from '../../activities/store';
import { deviceOption } from './classify';
import { embedOperands, layerOption, MODEL_FLAGS } from './embed';
import { intOption, parseWithPositionals, required, UsageError } from './args';

const HELP = `usage: alexnet neighbours QUERY... --index PREFIX --store URI (--run RUN_ID | --checkpoint KEY)
                          [-k 6] [--layer fc7|fc6] [--device cpu|cuda] [--threads N] [--dataset-name NAME]

Ranks the indexed images by Euclidean distance to each query in feature space, nearest
first, as Krizhevsky et al.'s Figure 4 does in fc7 space. The index is the output prefix of
a finished ClassifyImages job run with features (alexnet classify-batch --features fc7
--output PREFIX): its summary.json names the checkpoint, run and layer, and the queries are
embedded with that same checkpoint and layer (alexnet embed's features). A --run,
--checkpoint or --layer that is not the index's is refused.

QUERY: as alexnet classify (files, folders, file:///..., s3://bucket/key or prefix/).

Prints one JSON line per query: {"file", "neighbours": [{"key", "distance"}, ...]} (keys
relative to the job's source), or {"file", "error"} for a query it cannot read (the others
go on). Exits 0 when every query was answered, 1 when any was refused. Brute force: every
query against every indexed vector.`;

export async function neighbours(argv: string[]): Promise<void> {
  const { values: o, positionals } = parseWithPositionals(argv, { ...MODEL_FLAGS, index: { type: 'string' }, k: { type: 'string', short: 'k' } }, HELP);
  if (positionals.length === 0) throw new UsageError(`no query image given\n\n${HELP}`);
  const storeUri = required(o.store, 'store', HELP);
  const prefix = required(o.index, 'index', HELP);
  if (!o.run && !o.checkpoint) throw new UsageError(`give --run RUN_ID or --checkpoint KEY\n\n${HELP}`);
  const k = intOption(o.k, 'k', 6);
  const layer = layerOption(o.layer);
  const device = deviceOption(o.device);
  const store = openStore(storeUri);
  const index = await openFeatureIndex(store, prefix);
  const checkpoint = checkIndexQuery(index, { run: o.run, checkpoint: o.checkpoint, layer });
  const model = await loadInferenceModel({
    store: storeUri, checkpoint, datasetName: o['dataset-name'], device,
    threads: o.threads === undefined ? undefined : intOption(o.threads, 'threads', 1),
  });
  console.error(`neighbours: ${index.vectors} ${index.layer} vectors (${index.dimensions} wide) in ${index.output}; queries by ${describeModel(model)}`);
  const answers: ({ file: string; query: Float32Array } | { file: string; error: string })[] = [];
  const refused = await embedOperands(model, positionals, index.layer, (a) => {
    answers.push('error' in a ? { file: a.image, error: a.error } : { file: a.image, query: a.vector });
  });
  const queries = answers.flatMap((a) => ('query' in a ? [a.query] : []));
  const ranked = await nearestNeighbours(store, index, queries, k);
  let next = 0;
  for (const a of answers) {
    const line = 'error' in a ? { file: a.file, error: a.error } : { file: a.file, neighbours: ranked[next++] };
    process.stdout.write(JSON.stringify(line) + '\n');
  }
  if (refused > 0) process.exitCode = 1;
}
