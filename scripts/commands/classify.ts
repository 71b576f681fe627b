// alexnet classify: classifies images in this process (no Temporal) with a trained run's
// model, one JSON line per image on stdout.
import * as fs from 'fs';
import * as path from 'path';

import { classifyImages, type ImagePrediction } from '../../activities/classify';
import { isImageKey } from '../../activities/datasets';
import { describeModel, loadInferenceModel } from '../../activities/model';
import { openStore } from '../../activities/store';
import { DEVICES, type Device } from '../../native/index';
import { intOption, parseWithPositionals, required, UsageError } from './args';

const HELP = `usage: alexnet classify FILE_OR_URI... --store URI (--run RUN_ID | --checkpoint KEY)
                        [--top 5] [--crops 1|10] [--device cpu|cuda] [--threads N] [--dataset-name NAME]

Classifies images with a trained run's model, in this process. The model is the run's
promoted checkpoint (runs/RUN_ID/serving.json, moved by alexnet eval --promote), else its
newest (latest.json), or --checkpoint KEY; the classes, image size, resize kernel and mean
image come from the dataset the run trained on (runs/RUN_ID/run.json; --dataset-name for
runs older than that). Preprocessing is evaluation's: shorter side to S, central SxS, the
centre crop (--crops 1) or the paper's ten patches averaged (--crops 10).

FILE_OR_URI: an image file, a folder (every image under it), file:///..., or s3://bucket/key
(s3://bucket/prefix/ for every image under a prefix).

Prints one JSON line per image: {"image", "top": [{"class", "name", "probability"}, ...]}
or {"image", "error"} for an image it cannot read (the others are still classified).
Exits 0 when every image was classified, 1 when any was refused. Which model answered
goes to stderr.`;

// Reads many images, a few at a time, in the order given: paths, folders, file:// and s3:// URIs.
export async function* imageSources(operands: string[]): AsyncGenerator<{ image: string; read: () => Promise<Buffer> }> {
  for (const operand of operands) {
    if (/^s3:\/\//.test(operand) || operand.startsWith('file://')) {
      if (operand.endsWith('/')) {
        const store = openStore(operand);
        for await (const o of store.list('')) if (isImageKey(o.key)) yield { image: `${operand}${o.key}`, read: () => store.get(o.key) };
      } else {
        const cut = operand.lastIndexOf('/');
        const store = openStore(operand.slice(0, cut));
        yield { image: operand, read: () => store.get(operand.slice(cut + 1)) };
      }
      continue;
    }
    const stat = fs.statSync(operand, { throwIfNoEntry: false });
    if (stat?.isDirectory()) {
      const files = (fs.readdirSync(operand, { recursive: true }) as string[]).filter(isImageKey).sort();
      for (const f of files) yield { image: path.join(operand, f), read: () => fs.promises.readFile(path.join(operand, f)) };
    } else {
      yield { image: operand, read: () => fs.promises.readFile(operand) };
    }
  }
}

const CHUNK = 64;  // images read and answered together (classification: one forward per 128 patches)

// An image of the operands that could not be answered, and why.
export interface ImageRefusal { image: string; error: string }

// Answers the images the operands name, CHUNK at a time, in order (classify, embed,
// neighbours): `answer` takes a chunk of read files, onAnswer gets each image's answer; an
// unreadable file is answered with its error at once, the others go on. Returns how many
// images were refused (read or answered with an error).
export async function answerImages<A extends { image: string }>(operands: string[], answer: (chunk: { image: string; data: Buffer }[]) => Promise<(A | ImageRefusal)[]>, onAnswer: (a: A | ImageRefusal) => void): Promise<number> {
  let refused = 0;
  let chunk: { image: string; data: Buffer }[] = [];
  const flush = async () => {
    for (const a of await answer(chunk)) {
      if ('error' in a) refused++;
      onAnswer(a);
    }
    chunk = [];
  };
  for await (const source of imageSources(operands)) {
    try {
      chunk.push({ image: source.image, data: await source.read() });
    } catch (e) {
      refused++;
      onAnswer({ image: source.image, error: `cannot read: ${(e as Error).message}` });
    }
    if (chunk.length >= CHUNK) await flush();
  }
  if (chunk.length > 0) await flush();
  return refused;
}

export function deviceOption(value: string | undefined): Device {
  const device = (value ?? 'cpu') as Device;
  if (!DEVICES.includes(device)) throw new UsageError(`--device must be one of ${DEVICES.join(', ')}, got '${value}'`);
  return device;
}

export async function classify(argv: string[]): Promise<void> {
  const { values: o, positionals } = parseWithPositionals(argv, {
    store: { type: 'string' }, run: { type: 'string' }, checkpoint: { type: 'string' }, 'dataset-name': { type: 'string' },
    top: { type: 'string' }, crops: { type: 'string' }, device: { type: 'string' }, threads: { type: 'string' },
  }, HELP);
  if (positionals.length === 0) throw new UsageError(`no image given\n\n${HELP}`);
  const store = required(o.store, 'store', HELP);
  if (!o.run && !o.checkpoint) throw new UsageError(`give --run RUN_ID or --checkpoint KEY\n\n${HELP}`);
  const crops = intOption(o.crops, 'crops', 1);
  if (crops !== 1 && crops !== 10) throw new UsageError(`--crops must be 1 or 10, got ${crops}`);
  const device = deviceOption(o.device);
  const model = await loadInferenceModel({
    store, run: o.run, checkpoint: o.checkpoint, datasetName: o['dataset-name'], device,
    threads: o.threads === undefined ? undefined : intOption(o.threads, 'threads', 1),
  });
  console.error(`classify: ${describeModel(model)}`);
  const topK = intOption(o.top, 'top', 5);
  const refused = await answerImages<ImagePrediction>(positionals, (chunk) => classifyImages(model, chunk, { topK, crops: crops as 1 | 10 }),
    (a) => process.stdout.write(JSON.stringify(a) + '\n'));
  if (refused > 0) process.exitCode = 1;
}
