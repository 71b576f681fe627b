// alexnet embed: image features (DeCAF's fc7 or fc6, post-ReLU) with a trained run's model,
// in this process (no Temporal): one JSON line per image, or a safetensors file.
import * as fs from 'fs';

import { FEATURE_LAYERS, type FeatureLayer } from '../../common/contract';
import { embedImages, encodeFeatures, featureSize, type ImageEmbedding } from '../../activities/features';
import { describeModel, loadInferenceModel, type InferenceModel } from '../../activities/model';
import { answerImages, deviceOption } from './classify';
import { intOption, parseWithPositionals, UsageError } from './args';

const HELP = `usage: alexnet embed FILE_OR_URI... --store URI (--run RUN_ID | --checkpoint KEY)
                     [--layer fc7|fc6] [--out FILE.safetensors]
                     [--device cpu|cuda] [--threads N] [--dataset-name NAME]

Image features (Donahue et al.'s DeCAF): the activations of --layer (default fc7) after its
ReLU, at test time (no dropout), for each image's centre crop with the mean image
subtracted: classification's preprocessing and forward (alexnet classify). The model is
the run's promoted checkpoint, else its newest, or --checkpoint KEY.

FILE_OR_URI: as alexnet classify (files, folders, file:///..., s3://bucket/key or prefix/).

Prints one JSON line per image: {"file", "layer", "vector": [...]}, or {"file", "error"} for
an image it cannot read (the others go on). With --out, writes the vectors to a safetensors
file instead (tensor "features" F32 [N, D]; the N files, in order, as a JSON list in the
metadata's "keys"; docs/formats.md) and prints {"out", "layer", "vectors", "dimensions"},
after the error lines. Exits 0 when every image was embedded, 1 when any was refused.`;

export const MODEL_FLAGS = {
  store: { type: 'string' }, run: { type: 'string' }, checkpoint: { type: 'string' }, 'dataset-name': { type: 'string' },
  device: { type: 'string' }, threads: { type: 'string' }, layer: { type: 'string' },
} as const;

export function layerOption(value: string | undefined): FeatureLayer | undefined {
  if (value !== undefined && !(FEATURE_LAYERS as readonly string[]).includes(value)) throw new UsageError(`--layer must be one of ${FEATURE_LAYERS.join(', ')}, got '${value}'`);
  return value as FeatureLayer | undefined;
}

// Embeds the images the operands name, in order: onAnswer per image (an unreadable file
// answers with its error, the others go on). Returns how many were refused.
export function embedOperands(model: InferenceModel, operands: string[], layer: FeatureLayer, onAnswer: (a: ImageEmbedding) => void): Promise<number> {
  return answerImages(operands, (chunk) => embedImages(model, chunk, layer), onAnswer);
}

export async function embed(argv: string[]): Promise<void> {
  const { values: o, positionals } = parseWithPositionals(argv, { ...MODEL_FLAGS, out: { type: 'string' } }, HELP);
  if (positionals.length === 0) throw new UsageError(`no image given\n\n${HELP}`);
  if (!o.store) throw new UsageError(`missing --store\n\n${HELP}`);
  if (!o.run && !o.checkpoint) throw new UsageError(`give --run RUN_ID or --checkpoint KEY\n\n${HELP}`);
  const layer = layerOption(o.layer) ?? 'fc7';
  const model = await loadInferenceModel({
    store: o.store, run: o.run, checkpoint: o.checkpoint, datasetName: o['dataset-name'], device: deviceOption(o.device),
    threads: o.threads === undefined ? undefined : intOption(o.threads, 'threads', 1),
  });
  console.error(`embed: ${layer} of ${describeModel(model)}`);
  const keys: string[] = [];
  const vectors: Float32Array[] = [];
  const refused = await embedOperands(model, positionals, layer, (a) => {
    if ('error' in a) process.stdout.write(JSON.stringify({ file: a.image, error: a.error }) + '\n');
    else if (o.out !== undefined) {
      keys.push(a.image);
      vectors.push(a.vector);
    } else {
      process.stdout.write(JSON.stringify({ file: a.image, layer, vector: Array.from(a.vector) }) + '\n');
    }
  });
  if (o.out !== undefined) {
    const dimensions = featureSize(model.net.config, layer);
    const all = new Float32Array(vectors.length * dimensions);
    vectors.forEach((v, i) => all.set(v, i * dimensions));
    fs.writeFileSync(o.out, encodeFeatures({ layer, checkpoint: model.checkpoint.key, runId: model.checkpoint.runId, dimensions, keys, vectors: all }));
    process.stdout.write(JSON.stringify({ out: o.out, layer, vectors: keys.length, dimensions }) + '\n');
  }
  if (refused > 0) process.exitCode = 1;
}
