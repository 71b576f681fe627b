// Image features and retrieval. Donahue et al.'s DeCAF: a trained network's fc6/fc7
// activations are generic image features; the paper's Figure 4 ranks images by Euclidean
// distance in fc7 space. Here:
//   embedImages         a layer's features for image files: classification's preprocessing
//                       and forward (centre crop, mean subtracted, no dropout), post-ReLU
//   features files      <output>/features-<i>.safetensors beside ClassifyImages' part-<i>:
//                       one F32 tensor "features" [N, D], the N image keys in the metadata
//   the index           a ClassifyImages output prefix written with features: its
//                       summary.json names the checkpoint, run and layer
//   nearestNeighbours   brute force over every part of an index, top-k per query
import type { ClassifyImagesResult, FeatureLayer, ShardFeatures } from '../common/contract';
import { FEATURE_LAYERS } from '../common/contract';
import { predictionKeys } from '../common/store-layout';
import { checkConfig, featureLayer, type NetConfig } from '../native/index';
import { decodeSafetensors, encodeSafetensors, tensor } from '../native/safetensors';
import { classifyImages, type ImageInput } from './classify';
import type { InferenceModel } from './model';
import { getJson, type ObjectStore } from './store';

export type ImageEmbedding = { image: string; vector: Float32Array } | { image: string; error: string };

// The width of a layer's features (its output's C*H*W; fc7's out for a linear layer).
export function featureSize(config: NetConfig, layer: FeatureLayer): number {
  const [c, h, w] = checkConfig(config)[featureLayer(config, layer)];
  return c * h * w;
}

// Each image's `layer` features, in order; an image that cannot be read answers with its
// reason (the others go on). One forward per chunk gives them, the same forward that
// classifies (classifyImages with features).
export async function embedImages(model: InferenceModel, images: ImageInput[], layer: FeatureLayer): Promise<ImageEmbedding[]> {
  const answers = await classifyImages(model, images, { topK: 1, crops: 1, features: layer });
  return answers.map((a) => ('error' in a ? a : { image: a.image, vector: a.features! }));
}

// --- Features files ----------------------------------------------------------------------

// One features file: `keys[i]` is row i of `vectors` (keys.length x dimensions), the image
// keys relative to the source; the layer and checkpoint that computed them.
export interface FeaturesFile {
  layer: FeatureLayer;
  checkpoint: string;
  runId: string;
  dimensions: number;
  keys: string[];
  vectors: Float32Array;
}

const FORMAT = 'alexnet-features-1';

// safetensors metadata holds only strings: the keys go in as one JSON list.
export function encodeFeatures(f: FeaturesFile): Buffer {
  if (f.vectors.length !== f.keys.length * f.dimensions) throw new RangeError(`${f.keys.length} keys need ${f.keys.length * f.dimensions} values, not ${f.vectors.length}`);
  return encodeSafetensors({ features: tensor('F32', [f.keys.length, f.dimensions], f.vectors) }, {
    format: FORMAT, layer: f.layer, checkpoint: f.checkpoint, run: f.runId, keys: JSON.stringify(f.keys),
  });
}

export function decodeFeatures(buf: Buffer, source: string): FeaturesFile {
  const { tensors, metadata } = decodeSafetensors(buf, source);
  const bad = (what: string) => new Error(`${source} is not a features file: ${what}`);
  if (metadata.format !== FORMAT) throw bad(`metadata format is ${JSON.stringify(metadata.format)}, not "${FORMAT}"`);
  const t = tensors.get('features');
  if (!t || t.dtype !== 'F32' || t.shape.length !== 2) throw bad('no F32 tensor "features" [N, D]');
  let keys: unknown;
  try {
    keys = JSON.parse(metadata.keys ?? '');
  } catch {
    throw bad('metadata "keys" is not a JSON list');
  }
  if (!Array.isArray(keys) || keys.length !== t.shape[0] || !keys.every((k) => typeof k === 'string')) throw bad(`metadata "keys" is not a list of ${t.shape[0]} strings`);
  if (!(FEATURE_LAYERS as readonly string[]).includes(metadata.layer)) throw bad(`layer ${JSON.stringify(metadata.layer)}`);
  return {
    layer: metadata.layer as FeatureLayer, checkpoint: metadata.checkpoint, runId: metadata.run, dimensions: t.shape[1],
    keys: keys as string[], vectors: t.data as Float32Array,
  };
}

// --- The index ---------------------------------------------------------------------------

// A finished ClassifyImages job with features: where its parts are and what made them.
export interface FeatureIndex extends ShardFeatures {
  output: string;           // the prefix, ending in '/'
  parts: number;
  checkpoint: string;
  runId: string;
}

export async function openFeatureIndex(store: ObjectStore, prefix: string): Promise<FeatureIndex> {
  const keys = predictionKeys(prefix);
  if (!(await store.head(keys.summary))) {
    throw new Error(`${keys.root} in ${store.uri} is no index: it has no summary.json (write one with alexnet classify-batch --features fc7 --output ${keys.root}, and let it finish)`);
  }
  const summary = await getJson<ClassifyImagesResult>(store, keys.summary);
  if (!summary.features) {
    throw new Error(`${keys.root} in ${store.uri} is no index: its job classified without features (run alexnet classify-batch --features fc7 --output ${keys.root})`);
  }
  return { output: keys.root, parts: summary.parts, checkpoint: summary.checkpoint, runId: summary.runId, ...summary.features };
}

// The checkpoint to embed queries with: the index's own, so queries and index share one
// space. A run, checkpoint or layer asked for that is not the index's is refused.
export function checkIndexQuery(index: FeatureIndex, asked: { run?: string; checkpoint?: string; layer?: string }): string {
  const built = `${index.output} was built with run ${index.runId}'s checkpoint ${index.checkpoint}, layer ${index.layer}`;
  if (asked.run !== undefined && asked.run !== index.runId) throw new Error(`${built}: its vectors are not comparable with run ${asked.run}'s (query with --run ${index.runId})`);
  if (asked.checkpoint !== undefined && asked.checkpoint !== index.checkpoint) throw new Error(`${built}: its vectors are not comparable with checkpoint ${asked.checkpoint}'s`);
  if (asked.layer !== undefined && asked.layer !== index.layer) throw new Error(`${built}: its vectors are not comparable with ${asked.layer} features (query with --layer ${index.layer})`);
  return index.checkpoint;
}

// Every part's features, in part order, each checked against the index.
export async function* indexParts(store: ObjectStore, index: FeatureIndex): AsyncGenerator<FeaturesFile> {
  const keys = predictionKeys(index.output);
  for (let i = 0; i < index.parts; i++) {
    const key = keys.features(i);
    const part = decodeFeatures(await store.get(key), `${store.uri}/${key}`);
    if (part.layer !== index.layer || part.checkpoint !== index.checkpoint || part.dimensions !== index.dimensions) {
      throw new Error(`${key} holds ${part.layer} features (${part.dimensions} wide) of ${part.checkpoint}, not the index's ${index.layer} (${index.dimensions}) of ${index.checkpoint}: the prefix mixes jobs`);
    }
    yield part;
  }
}

export interface Neighbour { key: string; distance: number }

// The k indexed images nearest each query by Euclidean distance, nearest first (ties: index
// order). Brute force, one part in memory at a time: O(N*D) per query over N vectors of D.
export async function nearestNeighbours(store: ObjectStore, index: FeatureIndex, queries: Float32Array[], k: number): Promise<Neighbour[][]> {
  const D = index.dimensions;
  for (const q of queries) if (q.length !== D) throw new RangeError(`a query has ${q.length} features; the index has ${D}`);
  // Per query the k nearest so far, sorted by squared distance (summed in float64).
  const best: { key: string; squared: number }[][] = queries.map(() => []);
  for await (const part of indexParts(store, index)) {
    const x = part.vectors;
    queries.forEach((q, qi) => {
      const top = best[qi];
      for (let r = 0; r < part.keys.length; r++) {
        let squared = 0;
        for (let d = 0, o = r * D; d < D; d++, o++) {
          const diff = x[o] - q[d];
          squared += diff * diff;
        }
        if (top.length === k && squared >= top[k - 1].squared) continue;
        let at = top.length;
        while (at > 0 && top[at - 1].squared > squared) at--;
        top.splice(at, 0, { key: part.keys[r], squared });
        if (top.length > k) top.pop();
      }
    });
  }
  return best.map((top) => top.map((n) => ({ key: n.key, distance: Math.sqrt(n.squared) })));
}
