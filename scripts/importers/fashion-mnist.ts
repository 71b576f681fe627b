// Fashion-MNIST importer: turns the IDX files of Debian's dataset-fashion-mnist package
// into real greyscale JPEG files in any object store, laid out as class folders
// (train/<class>/<index>.jpg, test/<class>/<index>.jpg, classes.txt at the root), so the
// same listing and preprocessing path serves it and ImageNet alike.
import * as fsp from 'fs/promises';
import * as path from 'path';
import sharp from 'sharp';
import { promisify } from 'util';
import * as zlib from 'zlib';

import { heartbeat, throwIfCancelled } from '../../activities/activity-context';
import { openStore } from '../../activities/store';
import type { ObjectStore } from '../../activities/store/types';
import { inLanes } from '../../common/lanes';

export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

// The official class names (label i is class i), made path-safe.
export const FASHION_MNIST_CLASSES = [
  't-shirt_top', 'trouser', 'pullover', 'dress', 'coat', 'sandal', 'shirt', 'sneaker', 'bag', 'ankle_boot',
] as const;

const SPLITS = { train: 'train', test: 't10k' } as const;
export type FashionSplit = keyof typeof SPLITS;

const IMAGES_MAGIC = 2051; // IDX: unsigned bytes, 3 dimensions
const LABELS_MAGIC = 2049; // IDX: unsigned bytes, 1 dimension
const SIDE = 28;

const gunzip = promisify(zlib.gunzip);

export interface IdxSplit {
  count: number;
  images: Buffer; // count x 28 x 28 bytes, row-major, 0 = background
  labels: Buffer; // count bytes, 0..9
}

async function readGz(file: string): Promise<Buffer> {
  let gz: Buffer;
  try {
    gz = await fsp.readFile(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error(`${file} not found: install Fashion-MNIST with 'apt-get install dataset-fashion-mnist' (scripts/setup.sh does)`);
    }
    throw e;
  }
  try {
    return await gunzip(gz);
  } catch (e) {
    throw new Error(`${file}: not a readable gzip file (${(e as Error).message})`);
  }
}

// Reads and checks one split's pair of IDX files; every error names the file.
export async function readIdxSplit(split: FashionSplit, dir = FASHION_MNIST_DIR): Promise<IdxSplit> {
  const imagesFile = path.join(dir, `${SPLITS[split]}-images-idx3-ubyte.gz`);
  const labelsFile = path.join(dir, `${SPLITS[split]}-labels-idx1-ubyte.gz`);
  // Both read at once; a failure is reported images first, so the message is always the same.
  const [imgRead, labRead] = await Promise.allSettled([readGz(imagesFile), readGz(labelsFile)]);
  if (imgRead.status === 'rejected') throw imgRead.reason;
  if (labRead.status === 'rejected') throw labRead.reason;
  const [img, lab] = [imgRead.value, labRead.value];

  if (img.length < 16 || img.readUInt32BE(0) !== IMAGES_MAGIC) {
    throw new Error(`${imagesFile}: not an IDX image file (magic ${img.length >= 4 ? img.readUInt32BE(0) : 'missing'}, expected ${IMAGES_MAGIC})`);
  }
  const [count, rows, cols] = [img.readUInt32BE(4), img.readUInt32BE(8), img.readUInt32BE(12)];
  if (rows !== SIDE || cols !== SIDE) throw new Error(`${imagesFile}: images are ${rows}x${cols}, expected ${SIDE}x${SIDE}`);
  if (img.length !== 16 + count * SIDE * SIDE) {
    throw new Error(`${imagesFile}: ${img.length} bytes, expected ${16 + count * SIDE * SIDE} for ${count} images (truncated?)`);
  }
  if (lab.length < 8 || lab.readUInt32BE(0) !== LABELS_MAGIC) {
    throw new Error(`${labelsFile}: not an IDX label file (magic ${lab.length >= 4 ? lab.readUInt32BE(0) : 'missing'}, expected ${LABELS_MAGIC})`);
  }
  const labelCount = lab.readUInt32BE(4);
  if (labelCount !== count) throw new Error(`${labelsFile}: ${labelCount} labels for ${count} images in ${imagesFile}`);
  if (lab.length !== 8 + count) throw new Error(`${labelsFile}: ${lab.length} bytes, expected ${8 + count} for ${count} labels (truncated?)`);
  const labels = lab.subarray(8);
  const bad = labels.findIndex((l) => l >= FASHION_MNIST_CLASSES.length);
  if (bad >= 0) throw new Error(`${labelsFile}: label ${labels[bad]} at index ${bad} is not a class (0..9)`);
  return { count, images: img.subarray(16), labels };
}

// The key of image i of a split. Indexes are zero-padded so that keys list in index order.
export function fashionKey(split: FashionSplit, index: number, label: number): string {
  return `${split}/${FASHION_MNIST_CLASSES[label]}/${String(index).padStart(5, '0')}.jpg`;
}

export function encodeJpeg(pixels: Uint8Array, quality = 95): Promise<Buffer> {
  return sharp(pixels, { raw: { width: SIDE, height: SIDE, channels: 1 } })
    .toColourspace('b-w') // one channel in the file, not three copies
    .jpeg({ quality })
    .toBuffer();
}

export interface FashionImportOptions {
  // The first `limit` images of each split, in file order: not balanced per class, but
  // the files are shuffled, so the first 200 hold every class (16 to 27 of each).
  limit?: number;
  concurrency?: number; // uploads (and encodes) in flight; default 16
  sourceDir?: string;   // default /usr/share/datasets/fashion-mnist
  quality?: number;     // JPEG quality, default 95
  onProgress?: (done: number, total: number) => void;
}

export interface FashionImportResult {
  uri: string;
  splits: Record<FashionSplit, number>; // images in the store per split (after the import)
  written: number;
  skipped: number; // already present with the same size
  seconds: number;
}

export async function importFashionMnist(outUri: string, opts: FashionImportOptions = {}): Promise<FashionImportResult> {
  const started = Date.now();
  const concurrency = opts.concurrency ?? 16;
  const quality = opts.quality ?? 95;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new Error(`concurrency must be an integer >= 1, got ${concurrency}`);
  if (opts.limit !== undefined && (!Number.isInteger(opts.limit) || opts.limit < 1)) throw new Error(`limit must be an integer >= 1, got ${opts.limit}`);
  const data = {
    train: await readIdxSplit('train', opts.sourceDir),
    test: await readIdxSplit('test', opts.sourceDir),
  };
  const store: ObjectStore = openStore(outUri);
  // classes.txt first, so even a partial import lists with the right class order.
  const classesTxt = FASHION_MNIST_CLASSES.join('\n') + '\n';
  if ((await store.head('classes.txt'))?.size !== Buffer.byteLength(classesTxt)) await store.put('classes.txt', classesTxt);

  const jobs: { split: FashionSplit; index: number }[] = [];
  const splits = { train: 0, test: 0 };
  for (const split of ['train', 'test'] as const) {
    splits[split] = Math.min(data[split].count, opts.limit ?? Infinity);
    for (let index = 0; index < splits[split]; index++) jobs.push({ split, index });
  }
  // One listing instead of a head() per image: cheap on S3 (1000 keys per request).
  const existing = new Map<string, number>();
  for (const split of ['train', 'test'] as const) {
    for await (const o of store.list(`${split}/`)) existing.set(o.key, o.size);
  }

  let written = 0, skipped = 0;
  await inLanes(jobs.length, concurrency, async (j) => {
    throwIfCancelled(); // no-ops outside an activity
    if (j % 1000 === 0) heartbeat({ done: written + skipped });
    const { split, index } = jobs[j];
    const d = data[split];
    const key = fashionKey(split, index, d.labels[index]);
    // sharp's JPEG encoding is deterministic, so the same size means the same import.
    const jpeg = await encodeJpeg(d.images.subarray(index * SIDE * SIDE, (index + 1) * SIDE * SIDE), quality);
    if (existing.get(key) === jpeg.length) {
      skipped++;
    } else {
      await store.put(key, jpeg);
      written++;
    }
    opts.onProgress?.(written + skipped, jobs.length);
  });
  return { uri: store.uri, splits, written, skipped, seconds: (Date.now() - started) / 1000 };
}
