// alexnet export --onnx: a trained model's inference forward as an ONNX file, from a
// checkpoint in a store (given, or a run's promoted/newest) or a safetensors file.
import * as fs from 'fs';
import * as path from 'path';

import { readClassIds, readClassNames, readManifest, readMeanImage } from '../../activities/dataset-files';
import { readCheckpointNetwork, resolveCheckpoint, runDataset, type ResolvedCheckpoint } from '../../activities/model';
import { openStore, type ObjectStore } from '../../activities/store';
import { datasetKeys, runKeys } from '../../common/store-layout';
import { Network, type NetConfig } from '../../native/index';
import { exportOnnx, ONNX_IR_VERSION, ONNX_OPSET } from '../../native/onnx';
import { decodeState, loadStateInto } from '../../native/state';
import { parse, required, resolveModel, UsageError } from './args';

const HELP = `usage: alexnet export --onnx OUT.onnx (--checkpoint KEY --store URI | --run RUN_ID --store URI | --weights W.safetensors)
                      [--dataset-name NAME] [--model <name|config.json>]

Writes the network's inference forward as an ONNX model (opset ${ONNX_OPSET}, IR version ${ONNX_IR_VERSION}), the weights as
initializers. Input 'images' float32 [N, 3, crop, crop] (N dynamic): the centre crop of an
image whose shorter side was resized to S and centre-cropped to SxS, in 0..255 RGB.
Outputs 'logits' [N, classes] and 'probabilities' (Softmax). Dropout is the identity;
LRN keeps the paper's alpha (not divided by size) and the columns' groups.

When the export knows the dataset (--run/--checkpoint: the run's run.json; or
--dataset-name), the graph subtracts the dataset's mean image (its centre crop, a
constant) itself, and the metadata gets S, the resize kernel, the class ids and names.
Otherwise (--weights alone, a run without run.json) the input must already be
mean-subtracted: raw 0..255 RGB minus the mean image at the crop's pixels. The metadata
says which (mean_subtracted_in_graph, input_range).

--run takes the run's promoted checkpoint (runs/RUN_ID/serving.json), else its newest
(latest.json); which one goes to stderr. --dataset-name names the dataset instead of
run.json (with --weights too, given --store). --model gives the config of a weights file
that has none in its metadata (e.g. PyTorch weights).`;

// A failure of the checkpoint's resolution (activities' ApplicationFailure), under its type's name.
class ExportError extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

async function resolved<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (e) {
    const type = (e as { type?: unknown }).type;
    throw typeof type === 'string' ? new ExportError(type, (e as Error).message) : e;
  }
}

// The output must be a file in an existing, writable folder: checked before the checkpoint loads.
function checkOutput(out: string): void {
  if (!out.endsWith('.onnx')) throw new UsageError(`--onnx ${out}: the output file's name must end in .onnx`);
  const dir = path.dirname(path.resolve(out));
  const stat = fs.statSync(dir, { throwIfNoEntry: false });
  if (!stat?.isDirectory()) throw new UsageError(`--onnx ${out}: cannot write there: ${dir} is not an existing folder`);
  try {
    fs.accessSync(dir, fs.constants.W_OK);
  } catch {
    throw new UsageError(`--onnx ${out}: cannot write there: folder ${dir} is not writable`);
  }
  if (fs.statSync(out, { throwIfNoEntry: false })?.isDirectory()) throw new UsageError(`--onnx ${out}: is a folder; give a file name`);
}

// Written next to the target and renamed over it (a reader never sees half a file); the
// temporary file goes when either step fails.
function writeOutput(out: string, bytes: Uint8Array): void {
  const tmp = `${out}.tmp-${process.pid}`;
  try {
    fs.writeFileSync(tmp, bytes);
    fs.renameSync(tmp, out);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw new UsageError(`--onnx ${out}: cannot write: ${(e as Error).message}`);
  }
}

interface Loaded {
  net: Network;
  metadata: Record<string, string>;  // the ONNX file's provenance entries
  runId?: string;
}

async function fromStore(store: ObjectStore, run: string | undefined, checkpoint: string | undefined): Promise<Loaded> {
  const where: ResolvedCheckpoint = await resolved(resolveCheckpoint(store, { run, checkpoint }));
  const from = where.from === 'serving' ? 'promoted in serving.json' : where.from === 'latest' ? 'newest in latest.json; nothing promoted' : 'given';
  console.error(`export: run ${where.runId}: ${where.key} (${from})`);
  const { net, metadata } = await readCheckpointNetwork(store, where, { device: 'cpu' });  // only the weights are used
  const provenance: Record<string, string> = { checkpoint: where.key, checkpoint_from: where.from, run: where.runId, store: store.uri };
  for (const k of ['epoch', 'batch', 'step', 'checksum'] as const) if (metadata[k] !== undefined) provenance[`checkpoint_${k}`] = metadata[k];
  return { net, metadata: provenance, runId: where.runId };
}

function fromFile(file: string, model: string | undefined): Loaded {
  const source = `--weights ${file}`;
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new UsageError(`${source}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  const state = decodeState(buf, source);
  let config: NetConfig | undefined = state.config;
  if (model !== undefined) config = resolveModel(model);
  if (!config) throw new UsageError(`${source} has no 'config' in its metadata (not written by alexnet init or training): pass --model <name|config.json>`);
  const net = new Network(config, { init: false, device: 'cpu' });
  loadStateInto(net, state, source, { weightsOnly: true });
  const provenance: Record<string, string> = { checkpoint: path.resolve(file), checkpoint_from: 'weights' };
  for (const k of ['runId', 'epoch', 'batch', 'step', 'checksum'] as const) if (state.metadata[k] !== undefined) provenance[k === 'runId' ? 'run' : `checkpoint_${k}`] = state.metadata[k];
  return { net, metadata: provenance };
}

interface Preprocessing {
  metadata: Record<string, string>;
  inputDoc?: string;
  mean?: { image: Float32Array; size: number };
  classIds?: string[];
  classNames?: string[];
}

// The dataset the model trained on (--dataset-name, else the run's run.json): S, the resize
// kernel, the mean image (subtracted in the graph) and the class ids and names.
async function preprocessing(store: ObjectStore, runId: string | undefined, given: string | undefined, config: NetConfig): Promise<Preprocessing> {
  let datasetName = given;
  if (!datasetName && runId) {
    datasetName = await runDataset(store, runId);
    if (!datasetName) console.error(`export: run '${runId}' has no ${runKeys(runId).record}: the dataset is unknown, so the mean stays out of the graph (the caller subtracts it) and S and the class names out of the metadata (--dataset-name names the dataset)`);
  }
  if (!datasetName) return { metadata: {} };
  const manifest = await resolved(readManifest(store, datasetName));
  const crop = config.input.height;
  if (manifest.classes !== config.classes) throw new ExportError('InvalidInput', `the model has ${config.classes} classes but dataset '${datasetName}' has ${manifest.classes}: name the dataset the run trained on (--dataset-name)`);
  if (crop > manifest.imageSize) throw new ExportError('InvalidInput', `the model takes ${crop}x${crop} inputs, larger than dataset '${datasetName}''s ${manifest.imageSize}x${manifest.imageSize} images`);
  const S = manifest.imageSize, kernel = manifest.resizeKernel ?? 'lanczos3', offset = Math.floor((S - crop) / 2);
  const keys = datasetKeys(datasetName);
  if (!(await store.head(keys.meanImage))) throw new ExportError('DatasetMissing', `dataset '${datasetName}' has no mean image in ${store.uri} (no ${keys.meanImage}): the graph cannot subtract it; prepare the dataset again, or export from --weights without the dataset`);
  let image: Float32Array | undefined;
  try {
    image = await readMeanImage(store, datasetName);
  } catch (e) {
    throw new ExportError('InvalidInput', `${keys.meanImage}: cannot read the mean image: ${(e as Error).message}`);
  }
  if (image?.length !== S * S * 3) throw new ExportError('InvalidInput', `${keys.meanImage} holds ${image?.length ?? 0} values, not ${S}x${S}x3 (the manifest's image size)`);
  const ids = await readClassIds(store, datasetName, config.classes);
  if (!ids) console.error(`export: dataset '${datasetName}' has no ${keys.classes} with ${config.classes} entries: class_ids stays out of the metadata`);
  const names = await readClassNames(store, datasetName, config.classes);
  return {
    metadata: { dataset: datasetName, image_size: String(S), resize_kernel: kernel, crop: String(crop), crop_offset: String(offset), mean_image: `${store.uri.replace(/\/+$/, '')}/${keys.meanImage}` },
    inputDoc: `shorter side resized to S=${S} (${kernel}), the central ${S}x${S}, then its central ${crop}x${crop} patch (offset ${offset}), in raw 0..255 RGB units; the model subtracts the mean training image (${keys.meanImage}, its central ${crop}x${crop} patch, an initializer) itself`,
    mean: { image, size: S },
    classIds: ids,
    classNames: names,
  };
}

export async function exportCommand(argv: string[]): Promise<void> {
  const o = parse(argv, {
    onnx: { type: 'string' }, checkpoint: { type: 'string' }, run: { type: 'string' }, store: { type: 'string' },
    weights: { type: 'string' }, model: { type: 'string' }, 'dataset-name': { type: 'string' },
  }, HELP);
  const out = required(o.onnx, 'onnx', HELP);
  if (o.weights !== undefined && (o.run !== undefined || o.checkpoint !== undefined)) throw new UsageError(`give --weights or --run/--checkpoint, not both\n\n${HELP}`);
  if (o.weights === undefined && o.run === undefined && o.checkpoint === undefined) throw new UsageError(`give --checkpoint KEY, --run RUN_ID (both with --store) or --weights FILE\n\n${HELP}`);
  if (o.weights === undefined && o.store === undefined) throw new UsageError(`--${o.run !== undefined ? 'run' : 'checkpoint'} needs --store URI\n\n${HELP}`);
  if (o.model !== undefined && o.weights === undefined) throw new UsageError('--model goes with --weights (a checkpoint carries its config)');
  if (o['dataset-name'] !== undefined && o.store === undefined) throw new UsageError('--dataset-name needs --store URI (the store the dataset is prepared in)');
  checkOutput(out);

  const started = Date.now();
  const store = o.store === undefined ? undefined : openStore(o.store);
  const loaded = o.weights !== undefined ? fromFile(o.weights, o.model) : await fromStore(store!, o.run, o.checkpoint);
  const prep: Preprocessing = store ? await preprocessing(store, loaded.runId, o['dataset-name'], loaded.net.config) : { metadata: {} };
  const bytes = exportOnnx(loaded.net, { metadata: { ...loaded.metadata, ...prep.metadata }, inputDoc: prep.inputDoc, mean: prep.mean, classIds: prep.classIds, classNames: prep.classNames });
  writeOutput(out, bytes);
  const cfg = loaded.net.config;
  console.log(`wrote ${out}: ${cfg.name ?? 'custom'}, ${cfg.classes} classes, input [N,${cfg.input.channels},${cfg.input.height},${cfg.input.width}], ${prep.mean ? `mean of dataset '${prep.metadata.dataset}' subtracted in the graph` : 'input mean-subtracted by the caller'}, opset ${ONNX_OPSET}, ${(bytes.byteLength / 1e6).toFixed(1)} MB in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}
