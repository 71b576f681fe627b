// Dataset import and listing: Fashion-MNIST from Debian's IDX files into real JPEGs (pixels
// checked against the IDX data), and layout recognition on ImageNet-style and generic
// class-folder fixtures made of tiny real JPEGs, including the errors users will meet.
import test from 'ava';
import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import * as zlib from 'zlib';

import { carveValidation, listDataset, summarizeListing, writeListing, type DatasetListing } from '../activities/datasets';
import { FASHION_MNIST_CLASSES, fashionKey, importFashionMnist, readIdxSplit } from '../scripts/importers/fashion-mnist';
import { openStore } from '../activities/store';
import { alexnet, tmpDir } from './helpers';

const LIMIT = 200;

// A tiny real JPEG per call (colour varies so files differ).
let shade = 0;
function jpeg(): Promise<Buffer> {
  shade = (shade + 37) % 256;
  return sharp({ create: { width: 4, height: 4, channels: 3, background: { r: shade, g: 100, b: 200 } } }).jpeg().toBuffer();
}

// Writes files (contents: 'jpeg' for a real JPEG, else the text) under a new temp dir.
async function fixture(files: Record<string, string>): Promise<string> {
  const dir = tmpDir('alexnet-ds-');
  for (const [rel, body] of Object.entries(files)) {
    const p = path.join(dir, ...rel.split('/'));
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, body === 'jpeg' ? await jpeg() : body);
  }
  return dir;
}

function pairs(l: DatasetListing, split: string): [string, number][] {
  const s = l.splits[split];
  return s.keys.map((k, i) => [k, s.labels[i]]);
}

test('fashion-mnist: JPEGs match the IDX pixels and labels, classes.txt, listing, re-run skips', async (t) => {
  const dir = tmpDir('alexnet-fm-');
  const r = await importFashionMnist(dir, { limit: LIMIT, concurrency: 8 });
  t.deepEqual(r.splits, { train: LIMIT, test: LIMIT });
  t.is(r.written, 2 * LIMIT);
  t.is(r.skipped, 0);

  const store = openStore(dir);
  t.is((await store.get('classes.txt')).toString(), FASHION_MNIST_CLASSES.join('\n') + '\n');
  for (const split of ['train', 'test'] as const) {
    const idx = await readIdxSplit(split);
    t.is(idx.count, split === 'train' ? 60000 : 10000);
    const keys: string[] = [];
    for await (const o of store.list(`${split}/`)) keys.push(o.key);
    t.is(keys.length, LIMIT);
    let worst = 0;
    for (let i = 0; i < LIMIT; i++) {
      const key = fashionKey(split, i, idx.labels[i]);
      t.true(keys.includes(key), key);
      const { data, info } = await sharp(await store.get(key)).toColourspace('b-w').raw().toBuffer({ resolveWithObject: true });
      t.deepEqual([info.width, info.height, info.channels], [28, 28, 1]);
      const want = idx.images.subarray(i * 784, (i + 1) * 784);
      let diff = 0;
      for (let p = 0; p < 784; p++) diff += Math.abs(data[p] - want[p]);
      worst = Math.max(worst, diff / 784);
    }
    t.log(`${split}: worst mean |JPEG - IDX| over ${LIMIT} images = ${worst.toFixed(2)}`);
    t.true(worst < 3, `mean abs diff ${worst}`);
  }
  const meta = await sharp(await store.get(fashionKey('train', 0, (await readIdxSplit('train')).labels[0]))).metadata();
  t.like(meta, { format: 'jpeg', channels: 1, width: 28, height: 28 });

  // The importer's own layout is listed with the importer's labels and class order.
  const l = await listDataset(dir);
  t.is(l.layout, 'split-folders');
  t.deepEqual(l.classes, [...FASHION_MNIST_CLASSES]);
  const train = await readIdxSplit('train');
  for (const [key, label] of pairs(l, 'train')) t.is(label, train.labels[Number(path.basename(key, '.jpg'))]);
  t.deepEqual(summarizeListing(l), { layout: 'split-folders', classes: 10, splits: { train: LIMIT, test: LIMIT }, ignored: 0 });

  // Re-running resumes: nothing is rewritten.
  const someFile = path.join(dir, ...fashionKey('test', 3, (await readIdxSplit('test')).labels[3]).split('/'));
  const mtime = fs.statSync(someFile).mtimeMs;
  fs.unlinkSync(path.join(dir, ...fashionKey('train', 7, train.labels[7]).split('/')));
  const again = await importFashionMnist(`file://${dir}`, { limit: LIMIT });
  t.is(again.written, 1);
  t.is(again.skipped, 2 * LIMIT - 1);
  t.is(fs.statSync(someFile).mtimeMs, mtime);
});

test('fashion-mnist: missing, foreign and truncated IDX files are named', async (t) => {
  const out = tmpDir();
  const src = tmpDir('alexnet-idx-');
  await t.throwsAsync(importFashionMnist(out, { sourceDir: src }), { message: /train-images-idx3-ubyte\.gz not found: .*apt-get install dataset-fashion-mnist/ });

  const header = (...words: number[]) => {
    const b = Buffer.alloc(4 * words.length);
    words.forEach((w, i) => b.writeUInt32BE(w, 4 * i));
    return b;
  };
  const write = (name: string, buf: Buffer) => fs.writeFileSync(path.join(src, name), zlib.gzipSync(buf));
  write('train-images-idx3-ubyte.gz', Buffer.concat([header(2049, 2, 28, 28), Buffer.alloc(2 * 784)]));
  write('train-labels-idx1-ubyte.gz', Buffer.concat([header(2049, 2), Buffer.alloc(2)]));
  await t.throwsAsync(importFashionMnist(out, { sourceDir: src }), { message: /train-images-idx3-ubyte\.gz: not an IDX image file \(magic 2049, expected 2051\)/ });
  write('train-images-idx3-ubyte.gz', Buffer.concat([header(2051, 2, 28, 28), Buffer.alloc(784)]));
  await t.throwsAsync(importFashionMnist(out, { sourceDir: src }), { message: /train-images-idx3-ubyte\.gz: 800 bytes, expected 1584 for 2 images \(truncated\?\)/ });
  write('train-images-idx3-ubyte.gz', Buffer.concat([header(2051, 2, 28, 28), Buffer.alloc(2 * 784)]));
  write('train-labels-idx1-ubyte.gz', Buffer.concat([header(2049, 3), Buffer.alloc(3)]));
  await t.throwsAsync(importFashionMnist(out, { sourceDir: src }), { message: /train-labels-idx1-ubyte\.gz: 3 labels for 2 images/ });
  fs.writeFileSync(path.join(src, 'train-labels-idx1-ubyte.gz'), 'plain text');
  await t.throwsAsync(importFashionMnist(out, { sourceDir: src }), { message: /train-labels-idx1-ubyte\.gz: not a readable gzip file/ });
});

const W = ['n01440764', 'n01443537', 'n01484850'];

test('imagenet: train/<wnid>/, flat val with LOC_val_solution.csv, synset order and names', async (t) => {
  const dir = await fixture({
    // Not sorted: the synset list fixes the order.
    'LOC_synset_mapping.txt': `${W[2]} great white shark, white shark\n${W[0]} tench, Tinca tinca\n${W[1]} goldfish, Carassius auratus\n`,
    'LOC_val_solution.csv': `ImageId,PredictionString\nILSVRC2012_val_00000002,${W[1]} 1 2 3 4 ${W[1]} 5 6 7 8\n` +
      `ILSVRC2012_val_00000001,${W[0]} 0 0 9 9\nILSVRC2012_val_00000003,${W[2]} 1 1 2 2\nILSVRC2012_val_00000099,${W[2]} 1 1 2 2\n`,
    [`train/${W[0]}/${W[0]}_1.JPEG`]: 'jpeg',
    [`train/${W[0]}/${W[0]}_2.JPEG`]: 'not really a JPEG: listed anyway, preprocessing decides',
    [`train/${W[1]}/${W[1]}_7.jpeg`]: 'jpeg',
    [`train/${W[2]}/${W[2]}_3.Png`]: 'jpeg',
    [`train/${W[2]}/.DS_Store`]: 'x',
    [`train/${W[2]}/notes.txt`]: 'x',
    [`train/.hidden/x.JPEG`]: 'jpeg',
    'val/ILSVRC2012_val_00000001.JPEG': 'jpeg',
    'val/ILSVRC2012_val_00000002.JPEG': 'jpeg',
    'val/ILSVRC2012_val_00000003.JPEG': 'jpeg',
    'README.txt': 'hello',
  });
  const l = await listDataset(dir);
  t.is(l.layout, 'imagenet');
  t.deepEqual(l.classes, [W[2], W[0], W[1]]);
  t.deepEqual(l.names, ['great white shark, white shark', 'tench, Tinca tinca', 'goldfish, Carassius auratus']);
  t.deepEqual(pairs(l, 'train'), [
    [`train/${W[0]}/${W[0]}_1.JPEG`, 1], [`train/${W[0]}/${W[0]}_2.JPEG`, 1], [`train/${W[1]}/${W[1]}_7.jpeg`, 2], [`train/${W[2]}/${W[2]}_3.Png`, 0],
  ]);
  t.deepEqual(pairs(l, 'val'), [['val/ILSVRC2012_val_00000001.JPEG', 1], ['val/ILSVRC2012_val_00000002.JPEG', 2], ['val/ILSVRC2012_val_00000003.JPEG', 0]]);

  // The activity wrapper writes the listing into another store and returns a summary.
  const out = tmpDir();
  const summary = await writeListing(dir, `file://${out}`, 'ilsvrc-mini');
  t.deepEqual(summary, { layout: 'imagenet', classes: 3, splits: { train: 4, val: 3 }, ignored: 0 });
  const store = openStore(out);
  const lines = (await store.get('datasets/ilsvrc-mini/listing/val.jsonl')).toString().trimEnd().split('\n');
  t.deepEqual(lines.map((s) => JSON.parse(s) as unknown), pairs(l, 'val').map(([key, label]) => ({ key, label })));
  t.is(lines[0], '{"key":"val/ILSVRC2012_val_00000001.JPEG","label":1}');
  t.is((await store.get('datasets/ilsvrc-mini/listing/train.jsonl')).toString().split('\n').length, 5);
  t.deepEqual(JSON.parse((await store.get('datasets/ilsvrc-mini/classes.json')).toString()), [W[2], W[0], W[1]]);
  t.deepEqual(JSON.parse((await store.get('datasets/ilsvrc-mini/names.json')).toString()), l.names);
  await t.throwsAsync(writeListing(dir, out, '../x'), { message: /dataset name/ });
});

test('imagenet: sorted wnids without a synset list; val.txt by index or wnid; val/<wnid>/; Kaggle nesting', async (t) => {
  const train = { [`train/${W[1]}/a.JPEG`]: 'jpeg', [`train/${W[0]}/b.JPEG`]: 'jpeg', [`train/${W[2]}/c.JPEG`]: 'jpeg' };
  let l = await listDataset(await fixture({ ...train, 'val.txt': 'v1.JPEG 2\nv2.JPEG 0\n', 'val/v1.JPEG': 'jpeg', 'val/v2.JPEG': 'jpeg' }));
  t.is(l.layout, 'imagenet');
  t.deepEqual(l.classes, W);
  t.deepEqual(l.names, W);
  t.deepEqual(pairs(l, 'val'), [['val/v1.JPEG', 2], ['val/v2.JPEG', 0]]);

  l = await listDataset(await fixture({ ...train, 'val_labels.txt': `v1.JPEG ${W[1]}\n`, 'val/v1.JPEG': 'jpeg' }));
  t.deepEqual(pairs(l, 'val'), [['val/v1.JPEG', 1]]);

  l = await listDataset(await fixture({ ...train, [`val/${W[2]}/v.JPEG`]: 'jpeg' }));
  t.is(l.layout, 'imagenet');
  t.deepEqual(pairs(l, 'val'), [[`val/${W[2]}/v.JPEG`, 2]]);

  // Kaggle's release: images under ILSVRC/Data/CLS-LOC/, label files at the root,
  // an unlabeled flat test/ (left out, and said so).
  const k = 'ILSVRC/Data/CLS-LOC/';
  l = await listDataset(await fixture({
    'LOC_synset_mapping.txt': W.map((w) => `${w} fish ${w}`).join('\n'),
    'LOC_val_solution.csv': `ImageId,PredictionString\nILSVRC2012_val_00000001,${W[2]} 1 2 3 4\n`,
    [`${k}train/${W[0]}/${W[0]}_1.JPEG`]: 'jpeg', [`${k}train/${W[2]}/${W[2]}_1.JPEG`]: 'jpeg',
    [`${k}val/ILSVRC2012_val_00000001.JPEG`]: 'jpeg',
    [`${k}test/ILSVRC2012_test_00000001.JPEG`]: 'jpeg', [`${k}test/ILSVRC2012_test_00000002.JPEG`]: 'jpeg',
    'ILSVRC/ImageSets/CLS-LOC/val.txt': 'ILSVRC2012_val_00000001 1\n',
  }));
  t.is(l.layout, 'imagenet');
  t.deepEqual(pairs(l, 'train'), [[`${k}train/${W[0]}/${W[0]}_1.JPEG`, 0], [`${k}train/${W[2]}/${W[2]}_1.JPEG`, 2]]);
  t.deepEqual(pairs(l, 'val'), [[`${k}val/ILSVRC2012_val_00000001.JPEG`, 2]]);
  t.false('test' in l.splits);
  t.is(l.ignored.images, 2);
  t.regex(l.ignored.notes.join('\n'), /2 unlabeled images directly under test\//);
});

test('generic class folders: splits, validation -> val, classes.txt order, root folders', async (t) => {
  let l = await listDataset(await fixture({
    'train/dog/1.jpg': 'jpeg', 'train/cat/2.JPG': 'jpeg', 'train/cat/sub/3.webp': 'jpeg', 'train/cat/x.csv': 'a,b',
    'validation/dog/4.png': 'jpeg', 'test/bird/5.bmp': 'jpeg', 'misc/cat/6.jpg': 'jpeg',
  }));
  t.is(l.layout, 'split-folders');
  t.deepEqual(l.classes, ['bird', 'cat', 'dog']);
  t.deepEqual(pairs(l, 'train'), [['train/cat/2.JPG', 1], ['train/cat/sub/3.webp', 1], ['train/dog/1.jpg', 2]]);
  t.deepEqual(pairs(l, 'val'), [['validation/dog/4.png', 2]]);
  t.deepEqual(pairs(l, 'test'), [['test/bird/5.bmp', 0]]);
  t.is(l.ignored.images, 1);
  t.regex(l.ignored.notes[0], /1 images outside train\/, val\/, validation\/ and test\/ \(e\.g\. misc\/cat\/6\.jpg\)/);

  l = await listDataset(await fixture({ 'classes.txt': 'zebra\nant\n', 'ant/1.gif': 'jpeg', 'zebra/2.tif': 'jpeg', 'zebra/3.TIFF': 'jpeg' }));
  t.is(l.layout, 'class-folders');
  t.deepEqual(l.classes, ['zebra', 'ant']);
  t.deepEqual(pairs(l, 'train'), [['ant/1.gif', 1], ['zebra/2.tif', 0], ['zebra/3.TIFF', 0]]);
  t.deepEqual(Object.keys(l.splits), ['train']);
});

test('validation carved from train: 1/12 of each class, seeded, disjoint, key order; written by writeListing when val is missing', async (t) => {
  // 3 classes of 24, 12 and 1 images.
  const keys: string[] = [];
  const labels: number[] = [];
  for (const [c, n] of [[0, 24], [1, 12], [2, 1]]) for (let i = 0; i < n; i++) { keys.push(`train/c${c}/${String(i).padStart(3, '0')}.png`); labels.push(c); }
  const order = keys.map((k, i) => i).sort((a, b) => (keys[a] < keys[b] ? -1 : 1));
  const train = { keys: order.map((i) => keys[i]), labels: Int32Array.from(order.map((i) => labels[i])) };
  const a = carveValidation(train, 1 / 12, 7);
  const count = (l: Int32Array, c: number) => l.filter((x) => x === c).length;
  t.deepEqual([0, 1, 2].map((c) => count(a.val.labels, c)), [2, 1, 0], 'round(n/12) per class, at least 1, none of a single-image class');
  t.is(a.train.keys.length + a.val.keys.length, train.keys.length);
  t.deepEqual(new Set([...a.train.keys, ...a.val.keys]).size, train.keys.length, 'disjoint, nothing lost');
  t.deepEqual([...a.val.keys].sort(), a.val.keys, 'key order kept');
  t.deepEqual(carveValidation(train, 1 / 12, 7), a, 'deterministic');
  t.notDeepEqual(carveValidation(train, 1 / 12, 8).val.keys, a.val.keys, 'the seed chooses');
  t.throws(() => carveValidation(train, 0, 7), { message: /validationFraction/ });

  // writeListing carves when a dataset ships train and test only (Fashion-MNIST's layout).
  const src = tmpDir();
  for (const split of ['train', 'test']) {
    for (const c of ['a', 'b']) {
      fs.mkdirSync(path.join(src, split, c), { recursive: true });
      for (let i = 0; i < 12; i++) fs.writeFileSync(path.join(src, split, c, `${i}.png`), '');
    }
  }
  const out = tmpDir();
  const summary = await writeListing(src, out, 'carved', { validationFraction: 0.25, seed: 3 });
  t.deepEqual(summary.splits, { train: 18, test: 24, val: 6 });
  t.deepEqual(summary.carvedValidation, { from: 'train', fraction: 0.25, seed: 3, images: 6 });
  const store = openStore(out);
  const read = async (split: string) => (await store.get(`datasets/carved/listing/${split}.jsonl`)).toString().trim().split('\n').map((l) => (JSON.parse(l) as { key: string }).key);
  const [tr, va] = [await read('train'), await read('val')];
  t.is(va.length, 6);
  t.true(va.every((k) => k.startsWith('train/') && !tr.includes(k)), 'val images come from train and leave it');
});

test('listing errors: no layout, unlabeled val, unknown classes, both val folders', async (t) => {
  const empty = await fixture({ 'README.md': 'hi', 'photo.jpg': 'jpeg', 'docs/a.txt': 'x' });
  await t.throwsAsync(listDataset(empty), { message: /no recognizable dataset layout in file:\/\/.* \(3 objects\): expected <split>\/<class>\/<image>.*train\/<wnid>\/\*\.JPEG/ });
  await t.throwsAsync(listDataset(await fixture({ [`train/${W[0]}/a.JPEG`]: 'jpeg', 'val/v1.JPEG': 'jpeg' })),
    { message: /1 val images in .* have no labels \(e\.g\. val\/v1\.JPEG\): expected LOC_val_solution\.csv, val\.txt, val_labels\.txt at the dataset root, or val\/<class>\/ folders/ });
  await t.throwsAsync(listDataset(await fixture({ [`train/${W[0]}/a.JPEG`]: 'jpeg', 'val/v1.JPEG': 'jpeg', 'LOC_val_solution.csv': 'ImageId,PredictionString\nv1,n99999999 1 2 3 4\n' })),
    { message: /LOC_val_solution\.csv in .*: 'n99999999' \(for v1\) is not a known class \(1 classes from the class folders\)/ });
  await t.throwsAsync(listDataset(await fixture({ [`train/${W[0]}/a.JPEG`]: 'jpeg', 'val/v1.JPEG': 'jpeg', 'val/v2.JPEG': 'jpeg', 'val.txt': 'v1.JPEG 0\n' })),
    { message: /1 val images in .* have no label in the label file \(e\.g\. val\/v2\.JPEG\)/ });
  await t.throwsAsync(listDataset(await fixture({ 'classes.txt': 'cat\n', 'train/cat/1.jpg': 'jpeg', 'train/dog/2.jpg': 'jpeg' })),
    { message: /class folder 'dog' \(e\.g\. train\/dog\/2\.jpg\) in .* is not in classes\.txt/ });
  await t.throwsAsync(listDataset(await fixture({ 'train/cat/1.jpg': 'jpeg', 'val/cat/2.jpg': 'jpeg', 'validation/cat/3.jpg': 'jpeg' })),
    { message: /has both val\/ and validation\// });
  await t.throwsAsync(listDataset(await fixture({ 'train/1.jpg': 'jpeg' })), { message: /training images go in train\/<class>\/ folders/ });
});

test('cli: alexnet import imagenet and fashion-mnist, and usage errors', async (t) => {
  const src = await fixture({ [`train/${W[0]}/a.JPEG`]: 'jpeg', [`val/${W[0]}/b.JPEG`]: 'jpeg', 'LOC_synset_mapping.txt': `${W[0]} tench, Tinca tinca\n` });
  let r = alexnet('import', 'imagenet', '--source', src);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /layout imagenet, 1 classes, images: train 1, val 1/);
  t.regex(r.stdout, /n01440764 \(tench, Tinca tinca\)/);
  const out = tmpDir();
  r = alexnet('import', 'imagenet', '--source', src, '--store', out, '--name', 'tiny');
  t.is(r.status, 0, r.stderr);
  t.true(fs.existsSync(path.join(out, 'datasets', 'tiny', 'listing', 'train.jsonl')));
  r = alexnet('import', 'fashion-mnist', '--out', out, '--limit', '3');
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /train 3, test 3 images; 6 written, 0 already there/);
  t.is(alexnet('import', 'imagenet', '--source', src, '--store', out).status, 2);
  r = alexnet('import', 'mnist');
  t.is(r.status, 2);
  t.regex(r.stderr, /unknown dataset 'mnist'/);
  r = alexnet('import', 'fashion-mnist', '--limit', '0', '--out', out);
  t.regex(r.stderr, /--limit must be an integer >= 1/);
  r = alexnet('import', 'imagenet', '--source', tmpDir());
  t.is(r.status, 1);
  t.regex(r.stderr, /no recognizable dataset layout/);
});
