// alexnet import-weights torchvision: torchvision's AlexNet weights (its state dict, as the
// .pth torchvision downloads or as safetensors) made a run of ours, model
// torchvision-alexnet, that classify, serve, export and fine-tuning take as any other: the
// run's run.json and its checkpoint at epoch 0 (latest.json), and a dataset record that
// describes torchvision's preprocessing in our terms (manifest, mean image, class names).
//
// torchvision normalizes the input, ours subtracts a mean image. torchvision's conv1 sees
// (x/255 - m)/s per channel (x raw 0..255 RGB, m and s its ImageNet mean and std); ours
// sees x - M with M the dataset's mean image. With M = 255 m at every pixel, torchvision's
// input is (x - M) / (255 s), and conv1 is linear in it, so conv1's weights of input
// channel c divided by 255 s_c give on x - M what torchvision's give on its input. Zero
// padding agrees too (torchvision pads its input with 0, ours pads x - M with 0: the same
// point). Exact but for float rounding; the rest of the network is torchvision's as it is.
// The imported network then takes our input convention, so fine-tuning it on a dataset
// prepared by PrepareDataset (its own mean image) needs nothing else.
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { readLatest, readRunRecord, saveCheckpoint } from '../../activities/checkpoint';
import { getJson, openStore, type ObjectStore } from '../../activities/store';
import type { DatasetManifest, RunRecord } from '../../common/contract';
import { datasetKeys, runKeys } from '../../common/store-layout';
import { modelConfig, Network } from '../../native/index';
import { decodeSafetensors, encodeSafetensors, tensor, type Safetensors } from '../../native/safetensors';
import { runPython } from '../python';
import { parseWithPositionals, required, UsageError } from './args';

export const TORCHVISION_MODEL = 'torchvision-alexnet';
export const TORCHVISION_DATASET = 'imagenet-torchvision';

// Our parameter layers and where torchvision.models.AlexNet keeps them: features = Conv
// ReLU MaxPool Conv ReLU MaxPool Conv ReLU Conv ReLU Conv ReLU MaxPool, classifier =
// Dropout Linear ReLU Dropout Linear ReLU Linear (state dict keys <module>.weight / .bias,
// the same layouts as ours).
export const TORCHVISION_LAYERS: Record<string, string> = {
  conv1: 'features.0', conv2: 'features.3', conv3: 'features.6', conv4: 'features.8', conv5: 'features.10',
  fc6: 'classifier.1', fc7: 'classifier.4', fc8: 'classifier.6',
};

// torchvision's preprocessing for its AlexNet weights (AlexNet_Weights.IMAGENET1K_V1.transforms()):
// shorter side to 256 (bilinear), the central 224x224, /255, minus mean, over std (RGB).
export const TORCHVISION_PREPROCESSING = { resize: 256, crop: 224, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] } as const;

// In our dataset terms: S = 256 and the central SxS, whose central 224x224 is the region
// torchvision's centre crop takes (up to its rounding of an odd margin); sharp's linear
// kernel is the nearest to PIL's antialiased bilinear (equal when the shorter side is
// already 256, so nothing is resized). What manifest.source says identifies the record.
const MANIFEST_SOURCE = `torchvision AlexNet_Weights.IMAGENET1K_V1 preprocessing (alexnet import-weights): resize ${TORCHVISION_PREPROCESSING.resize} bilinear, centre crop ${TORCHVISION_PREPROCESSING.crop}, ` +
  `mean ${TORCHVISION_PREPROCESSING.mean.join('/')} as the mean image (x255), std ${TORCHVISION_PREPROCESSING.std.join('/')} folded into conv1`;

const HELP = `usage: alexnet import-weights torchvision FILE.pth|FILE.safetensors --store URI --run RUN_ID
                              [--dataset-name ${TORCHVISION_DATASET}] [--class-names NAMES.json]

Converts torchvision's AlexNet state dict (torchvision.models.alexnet(): the downloaded
alexnet-owt-7be5be79.pth, or any state dict of that architecture) into a run of model
${TORCHVISION_MODEL} in the store: runs/RUN_ID/run.json and its checkpoint at epoch 0
(latest.json). classify, serve, export --onnx and fine-tuning (TrainAlexNet's initFrom
{"run": RUN_ID}) then use it as any other run.

FILE: a .pth/.pt is read with Debian's python3-torch (torch.load, weights_only=True: a
pickle needs torch); a .safetensors is read directly. Every tensor must be torchvision's,
float32, with its shape; a missing, extra or misshapen one is refused by name.

The run's dataset (--dataset-name, default ${TORCHVISION_DATASET}) is written once per
store and shared by later imports: torchvision's preprocessing in our terms (S=256, linear
resize, the mean image 255 x ImageNet's per-channel mean; its 1/std is folded into conv1's
weights) and the 1000 ImageNet class names, from torchvision's weights metadata
(python3-torchvision, offline) or --class-names (a JSON array of 1000 names, index order).`;

// A weights file that is not torchvision's AlexNet, or a store that already holds the run or
// another dataset under the name: nothing was written.
export class ImportWeightsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ImportWeightsError';
  }
}

function python(args: string[], what: string): string {
  const r = runPython('torchvision_weights.py', args);
  if (r.status !== 0) throw new ImportWeightsError(`${what}: ${r.stderr.trim().replace(/^torchvision_weights: /, '') || `exit ${r.status}`}`);
  return r.stdout;
}

// The file's tensors: a .safetensors as it is, a .pth through torch (torchvision_weights.py).
function readStateDict(file: string): Safetensors {
  if (!fs.existsSync(file)) throw new UsageError(`${file}: no such file`);
  if (file.endsWith('.safetensors')) return decodeSafetensors(fs.readFileSync(file), file);
  if (!/\.(pth|pt)$/.test(file)) throw new UsageError(`${file}: expected a .pth or .pt (torch.save) or a .safetensors state dict`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'alexnet-import-'));
  try {
    const out = path.join(dir, 'state.safetensors');
    python(['tensors', file, out], `reading ${file} with PyTorch`);
    return decodeSafetensors(fs.readFileSync(out), file);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// Checks every tensor against torchvision's AlexNet (all there, float32, its shapes, no
// others) before anything is copied, naming the first that differs; then copies them into
// a network of ours, conv1 scaled by 1/(255 std) per input channel (the header).
export function torchvisionNetwork(file: Safetensors, source: string): Network {
  const net = new Network(modelConfig(TORCHVISION_MODEL), { init: false, device: 'cpu' });
  const expected = new Map(net.params.map((p) => {
    const dot = p.name.lastIndexOf('.');
    return [`${TORCHVISION_LAYERS[p.name.slice(0, dot)]}${p.name.slice(dot)}`, p] as const;
  }));
  const present = [...file.tensors.keys()];
  for (const [key, p] of expected) {
    const t = file.tensors.get(key);
    if (!t) {
      throw new ImportWeightsError(`${source} has no tensor '${key}' (torchvision's AlexNet has it as float32 [${p.shape}]; it becomes our ${p.name}): ` +
        `not a state dict of torchvision.models.alexnet() (the file has ${present.length} tensors: ${present.slice(0, 6).join(', ')}${present.length > 6 ? ', ...' : ''})`);
    }
    if (t.dtype !== 'F32' || t.shape.join() !== p.shape.join()) {
      throw new ImportWeightsError(`${source}: tensor '${key}' is ${t.dtype} [${t.shape}] but torchvision's AlexNet has F32 [${p.shape}] there (our ${p.name})` +
        (p.name.startsWith('fc8') && t.dtype === 'F32' ? `: a classifier for ${t.shape[0]} classes; the import takes torchvision's 1000 ImageNet classes (fine-tune from the run for others)` : ''));
    }
  }
  const extra = present.filter((k) => !expected.has(k));
  if (extra.length) throw new ImportWeightsError(`${source} has tensors torchvision's AlexNet does not: ${extra.slice(0, 6).join(', ')}${extra.length > 6 ? ', ...' : ''}: not a state dict of torchvision.models.alexnet()`);
  for (const [key, p] of expected) net.weight(p.name).set(file.tensors.get(key)!.data as Float32Array);
  const [, inChannels, kh, kw] = net.params.find((p) => p.name === 'conv1.weight')!.shape;  // [out, in, kh, kw]
  const w = net.weight('conv1.weight');
  for (let i = 0; i < w.length; i++) w[i] = w[i] / (255 * TORCHVISION_PREPROCESSING.std[Math.floor(i / (kh * kw)) % inChannels]);
  return net;
}

// The mean image of torchvision's preprocessing: 255 x its per-channel mean at every pixel, (S, S, 3).
export function torchvisionMeanImage(size = TORCHVISION_PREPROCESSING.resize): Float32Array {
  const mean = new Float32Array(size * size * 3);
  for (let i = 0; i < mean.length; i++) mean[i] = 255 * TORCHVISION_PREPROCESSING.mean[i % 3];
  return mean;
}

function classNames(given: string | undefined): string[] {
  let names: unknown;
  if (given !== undefined) {
    try {
      names = JSON.parse(fs.readFileSync(given, 'utf8'));
    } catch (e) {
      throw new UsageError(`--class-names ${given}: cannot read a JSON array of names (${(e as Error).message})`);
    }
  } else {
    names = JSON.parse(python(['categories'], 'the ImageNet class names from torchvision (AlexNet_Weights.IMAGENET1K_V1.meta)'));
  }
  if (!Array.isArray(names) || names.length !== 1000 || !names.every((n) => typeof n === 'string' && n !== '')) {
    throw new UsageError(`--class-names ${given ?? '(torchvision)'}: expected a JSON array of 1000 class names in torchvision's class order`);
  }
  return names as string[];
}

// The dataset record: written when absent (manifest last: it is what says the dataset
// exists), reused when it is torchvision's preprocessing already, refused otherwise.
async function ensureDataset(store: ObjectStore, name: string, names: () => string[]): Promise<'written' | 'reused'> {
  const keys = datasetKeys(name);
  if (await store.head(keys.manifest)) {
    const m = await getJson<DatasetManifest>(store, keys.manifest);
    if (m.source !== MANIFEST_SOURCE || m.imageSize !== TORCHVISION_PREPROCESSING.resize || m.classes !== 1000 || m.resizeKernel !== 'linear') {
      throw new ImportWeightsError(`dataset '${name}' already exists in ${store.uri} and is not torchvision's preprocessing (its ${keys.manifest} says ${JSON.stringify(m.source)}): pass another --dataset-name`);
    }
    return 'reused';
  }
  const classes = names();
  const S = TORCHVISION_PREPROCESSING.resize;
  await store.put(keys.meanImage, encodeSafetensors({ mean: tensor('F32', [S, S, 3], torchvisionMeanImage()) }, { layout: 'HWC', units: 'pixel values 0..255' }));
  // torchvision ships names, not wnids: the names are the class ids too.
  await store.put(keys.classes, JSON.stringify(classes));
  await store.put(keys.names, JSON.stringify(classes));
  const manifest: DatasetManifest = {
    name, source: MANIFEST_SOURCE, imageSize: S, seed: 0, shardSize: 1, classes: classes.length,
    splits: {}, statsKey: keys.stats, createdAt: new Date().toISOString(), resizeKernel: 'linear',
  };
  await store.put(keys.manifest, JSON.stringify(manifest, null, 1));
  return 'written';
}

export async function importWeights(argv: string[]): Promise<void> {
  const { values: o, positionals } = parseWithPositionals(argv, {
    store: { type: 'string' }, run: { type: 'string' }, 'dataset-name': { type: 'string' }, 'class-names': { type: 'string' },
  }, HELP);
  const [kind, file, ...more] = positionals;
  if (kind !== 'torchvision') throw new UsageError(`${kind === undefined ? 'missing the source' : `unknown source '${kind}'`}: expected torchvision\n\n${HELP}`);
  if (file === undefined || more.length) throw new UsageError(`give one weights file (FILE.pth or FILE.safetensors)\n\n${HELP}`);
  const store = openStore(required(o.store, 'store', HELP));
  const runId = required(o.run, 'run', HELP);
  const datasetName = o['dataset-name'] ?? TORCHVISION_DATASET;

  const keys = runKeys(runId);
  if ((await readLatest(store, runId)) || (await readRunRecord(store, runId))) {
    throw new ImportWeightsError(`run '${runId}' already exists in ${store.uri} (${keys.record}, ${keys.latest}): choose another --run`);
  }
  const started = Date.now();
  const net = torchvisionNetwork(readStateDict(file), file);
  const sha256 = createHash('sha256').update(fs.readFileSync(file)).digest('hex');
  const dataset = await ensureDataset(store, datasetName, () => classNames(o['class-names']));
  const record: RunRecord = { runId, datasetName, model: TORCHVISION_MODEL, classes: 1000, seed: 0, createdAt: new Date().toISOString() };
  await store.put(keys.record, JSON.stringify(record, null, 1));
  const pointer = await saveCheckpoint(store, runId, net, { epoch: 0, batch: 0 }, { attempt: 0, lr: 0 });
  const parameters = net.params.reduce((a, p) => a + p.shape.reduce((x, y) => x * y, 1), 0);
  console.log(`imported ${file} (sha256 ${sha256.slice(0, 12)}...) as run ${runId} in ${store.uri}: ${TORCHVISION_MODEL}, ${parameters.toLocaleString('en-US')} parameters, ` +
    `checkpoint ${pointer.key}, dataset '${datasetName}' (${dataset}) in ${((Date.now() - started) / 1000).toFixed(1)} s; next: alexnet serve --store ${o.store} --run ${runId}`);
}
