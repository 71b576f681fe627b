// Dataset listing: one pass over a store's keys recognizes the layout (ImageNet/ILSVRC,
// split class folders, or class folders at the root) and returns every labeled image per
// split, sorted by key. Keys and labels are kept as a string array and an Int32Array per
// split (no object per image), so ImageNet's 1.28M training keys cost tens of MB.
import { Readable } from 'stream';

import { seededRandom, shuffleInPlace } from '../common/shuffle';
import { DEFAULT_VALIDATION_FRACTION, type CarvedValidation } from '../common/contract';
import { heartbeat, throwIfCancelled } from './activity-context';
import { compareKeys, openStore, type ObjectStore } from './store';
import { datasetKeys } from '../common/store-layout';

// A dataset whose layout or labels cannot be understood: retrying cannot help, so the
// workflows list this error type as non-retryable.
export class DatasetLayoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DatasetLayoutError';
  }
}

export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.gif', '.webp', '.tif', '.tiff', '.bmp'];
// Folder names that mean a split; 'validation' is reported as 'val'.
const SPLIT_DIRS: Record<string, string> = { train: 'train', val: 'val', validation: 'val', test: 'test' };
// Kaggle's ILSVRC release keeps the images here, with the label files at its root.
const KAGGLE_BASE = 'ILSVRC/Data/CLS-LOC/';
const SYNSET_FILES = ['LOC_synset_mapping.txt', 'synsets.txt'];
const VAL_LABEL_FILES = ['LOC_val_solution.csv', 'val.txt', 'val_labels.txt'];
const ROOT_FILES = new Set([...SYNSET_FILES, ...VAL_LABEL_FILES, 'classes.txt']);
const WNID = /^n\d{8}$/;

export type Layout = 'imagenet' | 'split-folders' | 'class-folders';

export interface SplitListing {
  keys: string[];     // relative to the dataset root, ascending (UTF-8 byte order)
  labels: Int32Array; // labels[i] is the class index of keys[i]
}

export interface DatasetListing {
  uri: string;
  layout: Layout;
  classes: string[]; // class ids (folder names, wnids); index = label
  names: string[];   // human-readable names (synset words when known, else the ids)
  splits: Record<string, SplitListing>; // 'train', 'val', 'test' (those present)
  ignored: { images: number; notes: string[] }; // images left out (outside the layout, unlabeled test)
}

export interface ListingSummary {
  layout: Layout;
  classes: number;
  splits: Record<string, number>;
  ignored: number; // images left out
  carvedValidation?: CarvedValidation; // set when 'val' was held out of 'train'
}

export function isImageKey(key: string): boolean {
  const dot = key.lastIndexOf('.');
  return dot > key.lastIndexOf('/') && IMAGE_EXTENSIONS.includes(key.slice(dot).toLowerCase());
}

// The file name without its image extension: how label files name images.
function imageId(name: string): string {
  const base = name.slice(name.lastIndexOf('/') + 1);
  return isImageKey(base) ? base.slice(0, base.lastIndexOf('.')) : base;
}

// Keys and provisional class ids as they stream in; -1 marks a flat split image.
class Bucket {
  keys: string[] = [];
  cls: number[] = [];
  flat = 0;
  add(key: string, cls: number): void {
    this.keys.push(key);
    this.cls.push(cls);
    if (cls < 0) this.flat++;
  }
}

function lines(text: string): string[] {
  return text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
}

// The class order from a synset list ('<wnid> <words...>') or classes.txt, when present.
async function classOrder(store: ObjectStore, rootFiles: Set<string>): Promise<{ file: string; ids: string[]; names: string[] } | undefined> {
  for (const file of [...SYNSET_FILES, 'classes.txt']) {
    if (!rootFiles.has(file)) continue;
    const ids: string[] = [], names: string[] = [];
    for (const line of lines((await store.get(file)).toString('utf8'))) {
      const m = file === 'classes.txt' ? [line, line, ''] : /^(\S+)\s*(.*)$/.exec(line)!;
      ids.push(m[1]);
      names.push(m[2] || m[1]);
    }
    const dup = ids.find((id, i) => ids.indexOf(id) !== i);
    if (dup !== undefined) throw new DatasetLayoutError(`${file} in ${store.uri}: class '${dup}' appears twice`);
    if (ids.length === 0) throw new DatasetLayoutError(`${file} in ${store.uri}: no classes`);
    return { file, ids, names };
  }
  return undefined;
}

// image id -> class index, from LOC_val_solution.csv ('ImageId,PredictionString', the
// first token being the wnid) or '<filename> <class id or index>' lines.
async function valLabels(store: ObjectStore, file: string, classIndex: Map<string, number>, source: string): Promise<Map<string, number>> {
  const text = (await store.get(file)).toString('utf8');
  const out = new Map<string, number>();
  const all = lines(text);
  const csv = file.endsWith('.csv');
  if (csv && all[0]?.replace(/\s/g, '') === 'ImageId,PredictionString') all.shift();
  for (const line of all) {
    const comma = line.indexOf(',');
    const [name, rest] = csv ? (comma < 0 ? ['', ''] : [line.slice(0, comma), line.slice(comma + 1)]) : line.split(/\s+/);
    const token = (rest ?? '').trim().split(/\s+/)[0];
    let label = classIndex.get(token);
    if (label === undefined && !csv && /^\d+$/.test(token) && Number(token) < classIndex.size) label = Number(token);
    if (!name || !token) throw new DatasetLayoutError(`${file} in ${store.uri}: cannot read the line '${line.slice(0, 80)}'`);
    if (label === undefined) throw new DatasetLayoutError(`${file} in ${store.uri}: '${token}' (for ${name}) is not a known class (${classIndex.size} classes from ${source})`);
    out.set(imageId(name), label);
  }
  return out;
}

export interface ListOptions {
  onProgress?: (objectsSeen: number) => void; // every 10,000 objects (for heartbeats)
}

// dataset: a store URI, or an open store rooted at the dataset.
export async function listDataset(dataset: string | ObjectStore, opts: ListOptions = {}): Promise<DatasetListing> {
  const store = typeof dataset === 'string' ? openStore(dataset) : dataset;
  const splits = new Map<string, Bucket>(); // by split ('val' for val/ and validation/)
  const splitDirs = new Map<string, string>(); // split -> the folder name used
  const rootClasses = new Bucket();
  const provisional = new Map<string, number>(); // class folder name -> provisional id
  const provNames: string[] = [];
  const rootFiles = new Set<string>();
  let objects = 0, strays = 0, kaggle = false, plain = false;
  const strayExamples: string[] = [];
  const intern = (name: string): number => {
    let id = provisional.get(name);
    if (id === undefined) {
      id = provNames.push(name) - 1;
      provisional.set(name, id);
    }
    return id;
  };

  for await (const { key } of store.list('')) {
    if (++objects % 10000 === 0) opts.onProgress?.(objects);
    const segs = key.split('/');
    if (segs.some((s) => s.startsWith('.') || s === '__MACOSX')) continue; // hidden files and folders
    if (!isImageKey(key)) {
      if (segs.length === 1 && ROOT_FILES.has(key)) rootFiles.add(key);
      continue;
    }
    const nested = key.startsWith(KAGGLE_BASE);
    const rel = nested ? segs.slice(KAGGLE_BASE.split('/').length - 1) : segs;
    const split = SPLIT_DIRS[rel[0]];
    if (split !== undefined && rel.length >= 2) {
      if (nested) kaggle = true; else plain = true;
      const used = splitDirs.get(split);
      if (used !== undefined && used !== rel[0]) throw new DatasetLayoutError(`${store.uri} has both ${used}/ and ${rel[0]}/: keep one validation folder`);
      splitDirs.set(split, rel[0]);
      let bucket = splits.get(split);
      if (!bucket) splits.set(split, (bucket = new Bucket()));
      bucket.add(key, rel.length === 2 ? -1 : intern(rel[1]));
    } else if (segs.length >= 2) {
      rootClasses.add(key, intern(segs[0]));
    } else {
      strays++;
      if (strayExamples.length < 3) strayExamples.push(key);
    }
  }
  if (kaggle && plain) throw new DatasetLayoutError(`${store.uri} holds both ${KAGGLE_BASE}<split>/ and <split>/ folders at the root: point at one dataset`);

  const ignored = { images: strays, notes: [] as string[] };
  if (strays > 0) ignored.notes.push(`${strays} images at the root, outside any class folder (e.g. ${strayExamples.join(', ')})`);
  let layout: Layout;
  if (splits.size > 0) {
    layout = 'split-folders';
    if (rootClasses.keys.length > 0) {
      ignored.images += rootClasses.keys.length;
      ignored.notes.push(`${rootClasses.keys.length} images outside train/, val/, validation/ and test/ (e.g. ${rootClasses.keys[0]})`);
    }
  } else if (rootClasses.keys.length > 0) {
    layout = 'class-folders';
    splits.set('train', rootClasses);
  } else {
    throw new DatasetLayoutError(`no recognizable dataset layout in ${store.uri} (${objects} objects): expected ` +
      `<split>/<class>/<image> folders (split: train, val, validation or test), ImageNet's ` +
      `train/<wnid>/*.JPEG with val/<wnid>/ or a flat val/ plus LOC_val_solution.csv, val.txt or val_labels.txt, ` +
      `or <class>/<image> folders at the root; images end in ${IMAGE_EXTENSIONS.join(' ')}`);
  }

  // Class order: the synset list, else classes.txt, else the sorted folder names in use.
  const order = await classOrder(store, rootFiles);
  let classes: string[], names: string[], source: string;
  if (order) {
    ({ ids: classes, names } = order);
    source = order.file;
  } else {
    const used = new Set<number>();
    for (const b of splits.values()) for (const c of b.cls) if (c >= 0) used.add(c);
    classes = [...used].map((c) => provNames[c]).sort(compareKeys);
    names = classes;
    source = 'the class folders';
  }
  const classIndex = new Map(classes.map((c, i) => [c, i]));
  const finalOf = provNames.map((name) => classIndex.get(name) ?? -1);

  const result: Record<string, SplitListing> = {};
  let usedValFile = false;
  for (const split of ['train', 'val', 'test']) {
    const b = splits.get(split);
    if (!b) continue;
    const dir = splitDirs.get(split) ?? split;
    let flatLabels: Map<string, number> | undefined;
    let keepFlat = true;
    if (b.flat > 0) {
      const example = b.keys[b.cls.indexOf(-1)];
      const file = split === 'val' ? VAL_LABEL_FILES.find((f) => rootFiles.has(f)) : undefined;
      if (file) {
        flatLabels = await valLabels(store, file, classIndex, source);
        usedValFile = true;
      } else if (split === 'test') {
        keepFlat = false; // ILSVRC's test labels were never released
        ignored.images += b.flat;
        ignored.notes.push(`${b.flat} unlabeled images directly under ${dir}/ (e.g. ${example})`);
      } else if (split === 'val') {
        throw new DatasetLayoutError(`${b.flat} val images in ${store.uri} have no labels (e.g. ${example}): expected ` +
          `${VAL_LABEL_FILES.join(', ')} at the dataset root, or ${dir}/<class>/ folders`);
      } else {
        throw new DatasetLayoutError(`${b.flat} images directly under ${dir}/ in ${store.uri} (e.g. ${example}): training images go in ${dir}/<class>/ folders`);
      }
    }
    const keys: string[] = [];
    const labels = new Int32Array(b.keys.length);
    let unlabeled = 0, firstUnlabeled = '';
    for (let i = 0; i < b.keys.length; i++) {
      const key = b.keys[i];
      let label: number;
      if (b.cls[i] >= 0) {
        label = finalOf[b.cls[i]];
        if (label < 0) throw new DatasetLayoutError(`class folder '${provNames[b.cls[i]]}' (e.g. ${key}) in ${store.uri} is not in ${source}`);
      } else {
        if (!keepFlat) continue;
        const l = flatLabels!.get(imageId(key));
        if (l === undefined) {
          if (unlabeled++ === 0) firstUnlabeled = key;
          continue;
        }
        label = l;
      }
      labels[keys.length] = label;
      keys.push(key);
    }
    if (unlabeled > 0) throw new DatasetLayoutError(`${unlabeled} ${dir} images in ${store.uri} have no label in the label file (e.g. ${firstUnlabeled})`);
    // store.list returns keys in ascending order, and a split's keys are a subsequence.
    if (keys.length > 0) result[split] = { keys, labels: labels.slice(0, keys.length) };
    b.keys = [];
    b.cls = []; // let the provisional arrays go as soon as possible
  }

  const wnids = classes.every((c) => WNID.test(c));
  if (kaggle || usedValFile || rootFiles.has(SYNSET_FILES[0]) || rootFiles.has(SYNSET_FILES[1]) || (wnids && layout === 'split-folders')) layout = 'imagenet';
  return { uri: store.uri, layout, classes, names, splits: result, ignored };
}

export function summarizeListing(listing: DatasetListing, carvedValidation?: CarvedValidation): ListingSummary {
  const splits: Record<string, number> = {};
  for (const [split, s] of Object.entries(listing.splits)) splits[split] = s.keys.length;
  return { layout: listing.layout, classes: listing.classes.length, splits, ignored: listing.ignored.images, ...(carvedValidation ? { carvedValidation } : {}) };
}

// A held-out validation split carved out of train, for datasets that ship none (so that
// the test split never steers training: the LR policy and stall detection read 'val').
// Per class, a seeded shuffle picks round(fraction * n) images (at least 1 and at most
// n - 1 when a class has 2 or more); both splits stay in key order. Deterministic: the
// same listing, fraction and seed always carve the same images.
export function carveValidation(train: SplitListing, fraction: number, seed: number): { train: SplitListing; val: SplitListing } {
  if (!(fraction > 0 && fraction < 1)) throw new RangeError(`validationFraction must be in (0, 1), got ${fraction}`);
  const byClass = new Map<number, number[]>();
  for (let i = 0; i < train.keys.length; i++) {
    const c = train.labels[i];
    let list = byClass.get(c);
    if (!list) byClass.set(c, (list = []));
    list.push(i);
  }
  const held = new Uint8Array(train.keys.length);
  const rand = seededRandom(seed);
  for (const c of [...byClass.keys()].sort((a, b) => a - b)) {
    const idx = byClass.get(c)!;
    const n = idx.length;
    const take = n < 2 ? 0 : Math.min(n - 1, Math.max(1, Math.round(fraction * n)));
    for (const i of shuffleInPlace(idx, rand).slice(0, take)) held[i] = 1;
  }
  const pick = (want: number): SplitListing => {
    const keys: string[] = [];
    const labels: number[] = [];
    for (let i = 0; i < train.keys.length; i++) {
      if (held[i] === want) {
        keys.push(train.keys[i]);
        labels.push(train.labels[i]);
      }
    }
    return { keys, labels: Int32Array.from(labels) };
  };
  return { train: pick(0), val: pick(1) };
}

// One '{"key":...,"label":...}' line per image, in chunks of about 1 MB.
function* jsonl(split: SplitListing): Generator<Buffer> {
  let chunk = '';
  for (let i = 0; i < split.keys.length; i++) {
    chunk += JSON.stringify({ key: split.keys[i], label: split.labels[i] }) + '\n';
    if (chunk.length >= 1 << 20) {
      yield Buffer.from(chunk, 'utf8');
      chunk = '';
    }
  }
  if (chunk !== '') yield Buffer.from(chunk, 'utf8');
}

// The activity: lists datasetUri and writes datasets/<name>/listing/<split>.jsonl,
// classes.json (class ids, index = label) and names.json (human-readable names) into
// storeUri. A dataset with a train split and no val split gets one carved out of train
// (carveValidation). Returns only a summary: it travels through Temporal.
export async function writeListing(datasetUri: string, storeUri: string, name: string,
  options: { validationFraction?: number; seed?: number } = {}): Promise<ListingSummary> {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) throw new DatasetLayoutError(`dataset name '${name}': use letters, digits, '.', '_' and '-'`);
  const keys = datasetKeys(name);
  // Heartbeats when run as an activity (listing ImageNet on S3 takes minutes); no-ops elsewhere.
  const beat = (objectsSeen: number): void => {
    throwIfCancelled();
    heartbeat({ objectsSeen });
  };
  const listing = await listDataset(datasetUri, { onProgress: beat });
  let carved: CarvedValidation | undefined;
  const train = listing.splits.train;
  if (train && !listing.splits.val) {
    const fraction = options.validationFraction ?? DEFAULT_VALIDATION_FRACTION;
    const seed = options.seed ?? 0;
    const split = carveValidation(train, fraction, seed);
    if (split.val.keys.length > 0) {
      listing.splits = { ...listing.splits, train: split.train, val: split.val };
      carved = { from: 'train', fraction, seed, images: split.val.keys.length };
    }
  }
  const store = openStore(storeUri);
  for (const [split, s] of Object.entries(listing.splits)) {
    await store.putStream(keys.listing(split), Readable.from(jsonl(s)));
    heartbeat({ written: split });
  }
  await store.put(keys.classes, JSON.stringify(listing.classes) + '\n');
  await store.put(keys.names, JSON.stringify(listing.names) + '\n');
  return summarizeListing(listing, carved);
}
