// Hostile and corrupt state files (issue 23): a safetensors header whose offsets, shapes or
// metadata were edited, a config asking for 100,000 layers or one that is not the run's,
// and pointers (latest.json, serving.json, run.json) that are not what they should be.
// Each is refused by name, coded CORRUPT_STATE, on every path that loads it: the file
// and stream decoders, training's loadNewestCheckpoint, inference's model, and the CLI's
// classify and export (a message, not a stack). Checkpoints written before the header
// checksum (version 1) still load.
import test, { type ExecutionContext } from 'ava';
import * as fs from 'fs';
import * as path from 'path';
import { Readable } from 'stream';
import sharp from 'sharp';

import { loadNewestCheckpoint, readLatest, saveCheckpoint } from '../activities/checkpoint';
import { loadInferenceModel, resolveCheckpoint } from '../activities/model';
import { promoteCheckpoint, readServing } from '../activities/promotion';
import { pruneCheckpoints } from '../activities/retention';
import { getJson, openStore, type ObjectStore } from '../activities/store';
import type { RunRecord } from '../common/contract';
import { datasetKeys, runKeys } from '../common/store-layout';
import { checkConfigLimits, CONFIG_LIMITS, modelConfig, Network, presetNames, type NetConfig } from '../native/index';
import { nameAllocator, exportOnnx } from '../native/onnx';
import { decodeSafetensors, encodeSafetensors, readSafetensors, SafetensorsError, tensor, tensorsChecksum } from '../native/safetensors';
import { decodeState, encodeState, headerChecksum, networkFromState, readStateNetwork, StateError, stateTensors, STATE_VERSION } from '../native/state';
import { alexnet, tmpDir } from './helpers';

// ---------------------------------------------------------------- files, by hand

// An 8-byte length, the header as JSON (padded to keep the data 8-byte aligned), the data.
function withHeader(header: unknown, data: Buffer): Buffer {
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return Buffer.concat([length, Buffer.from(json), data]);
}

type Header = Record<string, { dtype: unknown; shape: unknown; data_offsets: unknown }> & { __metadata__?: Record<string, string> };

// The same file with its header changed by `edit` and its data untouched.
function editHeader(buf: Buffer, edit: (header: Header) => void): Buffer {
  const end = 8 + Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, end).toString()) as Header;
  edit(header);
  return withHeader(header, buf.subarray(end));
}

const bytesOf = (t: { data: ArrayBufferView }) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);

// A version-1 state as the writer before the header checksum made it, its header built
// here by hand: the tensors end to end in stateTensors' order; in the metadata the extra
// entries, format, version '1', config, step and the checksum over the tensor bytes, and
// no headerChecksum. `config` replaces the network's in the metadata (a hostile one).
function v1State(net: Network, extra: Record<string, string> = {}, config: unknown = net.config): Buffer {
  const tensors = stateTensors(net);
  const header: Record<string, unknown> = {
    __metadata__: { ...extra, format: 'alexnet-state', version: '1', config: JSON.stringify(config), step: net.rngState.counter.toString(), checksum: tensorsChecksum(Object.values(tensors)) },
  };
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  return withHeader(header, Buffer.concat(Object.values(tensors).map(bytesOf)));
}

// buf as a stream of `size`-byte chunks.
function chunks(buf: Buffer, size = 100): Readable {
  return Readable.from((function* () {
    for (let off = 0; off < buf.length; off += size) yield buf.subarray(off, off + size);
  })());
}

// Refused alike by the file decoder, the stream decoder, and both state readers.
async function refusedEverywhere(t: ExecutionContext, buf: Buffer, expected: { instanceOf: typeof SafetensorsError | typeof StateError; message: RegExp }, what: string): Promise<void> {
  if (expected.instanceOf === SafetensorsError) {
    t.throws(() => decodeSafetensors(buf, 'f.safetensors'), expected, `${what}: decodeSafetensors`);
    await t.throwsAsync(readSafetensors(chunks(buf), 'f.safetensors'), expected, `${what}: readSafetensors`);
  }
  t.throws(() => decodeState(buf, 'f.safetensors'), expected, `${what}: decodeState`);
  const e = await t.throwsAsync(readStateNetwork(chunks(buf), 'f.safetensors'), expected, `${what}: readStateNetwork`);
  t.is((e as { code?: string } | undefined)?.code, 'CORRUPT_STATE', what);
}

const tinyState = () => {
  const net = new Network('tiny', { seed: 5 });
  net.weight('fc8.bias').set([0.5, -1, 2, 0, 1]);
  return net;
};

// ---------------------------------------------------------------- 5: the header

test('hostile header: fc8.bias pointed into conv1.weight is refused, with or without a header checksum', async (t) => {
  const net = tinyState();
  const into = (h: Header) => { h['fc8.bias'].data_offsets = [0, 20]; };  // 5 floats of conv1.weight
  const overlap = { instanceOf: SafetensorsError, message: /f\.safetensors is not a valid safetensors file: tensor '[^']+' .* overlapping tensor '[^']+'/ };
  await refusedEverywhere(t, editHeader(encodeState(net), into), overlap, 'version 2');
  await refusedEverywhere(t, editHeader(v1State(net), into), overlap, 'version 1');
});

test('hostile header: offsets or shapes that are strings, fractions, negative or out of order are refused', async (t) => {
  const buf = v1State(tinyState());
  const cases: [string, (h: Header) => void, RegExp][] = [
    ['offsets as strings', (h) => { h['fc8.bias'].data_offsets = (h['fc8.bias'].data_offsets as number[]).map(String); }, /tensor 'fc8\.bias' has data_offsets \["\d+","\d+"\]; expected \[begin, end\], integers/],
    ['fractional offsets', (h) => { h['fc8.bias'].data_offsets = (h['fc8.bias'].data_offsets as number[]).map((o) => o + 0.5); }, /tensor 'fc8\.bias' has data_offsets \[[\d.]+,[\d.]+\]/],
    ['negative offsets', (h) => { h['conv1.weight'].data_offsets = [-4, 428]; }, /tensor 'conv1\.weight' has data_offsets \[-4,428\]/],
    ['one offset', (h) => { h['fc8.bias'].data_offsets = [0]; }, /data_offsets \[0\]/],
    ['begin after end', (h) => { const [b, e] = h['fc8.bias'].data_offsets as number[]; h['fc8.bias'].data_offsets = [e, b]; }, /data_offsets \[\d+,\d+\]; expected \[begin, end\], integers with 0 <= begin <= end/],
    ['a shape of strings', (h) => { h['fc8.bias'].shape = ['5']; }, /tensor 'fc8\.bias' has shape \["5"\]; a shape is a list of non-negative integers/],
    ['a fractional shape', (h) => { h['fc8.bias'].shape = [2.5, 2]; }, /tensor 'fc8\.bias' has shape \[2\.5,2\]/],
    ['a shape that is not a list', (h) => { h['fc8.bias'].shape = 5; }, /tensor 'fc8\.bias' has shape 5/],
    ['a shape that does not fit the range', (h) => { h['fc8.bias'].shape = [4]; }, /tensor 'fc8\.bias' \[4\] F32 has byte range \[\d+, \d+\) that does not fit its shape: \[4\] F32 takes 16 bytes/],
    ['an unknown dtype', (h) => { h['fc8.bias'].dtype = 'F16'; }, /tensor 'fc8\.bias' has dtype "F16"; supported/],
    ['a tensor moved past the end (a hole)', (h) => {
      const [b, e] = h['rng.state'].data_offsets as number[];
      h['rng.state'].data_offsets = [b + 8, e + 8];
    }, /tensor 'rng\.state' .* has byte range \[\d+, \d+\), but tensor '[^']+' ends at \d+: a hole in the data/],
    ['a tensor missing (a hole)', (h) => { delete h['momentum.conv1.weight']; }, /a hole in the data/],
    ['two tensors swapped onto one range', (h) => { h['momentum.fc8.bias'].data_offsets = h['fc8.bias'].data_offsets; }, /overlapping tensor/],
    ['an entry that is not an object', (h) => { (h as Record<string, unknown>)['fc8.bias'] = null; }, /entry 'fc8\.bias' lacks dtype, shape or data_offsets/],
  ];
  for (const [what, edit, message] of cases) await refusedEverywhere(t, editHeader(buf, edit), { instanceOf: SafetensorsError, message }, what);
});

test('hostile header: a header or metadata that is not an object (of strings) gets the named error, not a TypeError', async (t) => {
  const data = Buffer.alloc(0);
  for (const [header, message] of [
    [null, /header is null, not a JSON object of tensors/],
    [[1, 2], /header is \[1,2\], not a JSON object/],
    [7, /header is 7, not a JSON object/],
    ['x', /header is "x", not a JSON object/],
    [{ __metadata__: null }, /__metadata__ is null, not an object of strings/],
    [{ __metadata__: ['a'] }, /__metadata__ is \["a"\], not an object of strings/],
    [{ __metadata__: { config: { layers: [] } } }, /__metadata__ 'config' is \{"layers":\[\]\}, not a string/],
    [{ __metadata__: { lr: 0.1 } }, /__metadata__ 'lr' is 0\.1, not a string/],
  ] as const) {
    await refusedEverywhere(t, withHeader(header, data), { instanceOf: SafetensorsError, message }, JSON.stringify(header));
  }
});

test('state v2: the header checksum refuses an edit the structure allows (swapped ranges, a changed config or lr), by name', async (t) => {
  const net = tinyState();
  const buf = encodeState(net, { lr: '0.01' });
  t.is(decodeSafetensors(buf).metadata.version, STATE_VERSION);
  const edited = { instanceOf: StateError, message: /f\.safetensors is corrupt: its header \(tensor names, dtypes, shapes, byte ranges or metadata such as the config\) does not match the headerChecksum in its metadata\. Use an earlier checkpoint/ };
  // Weights and momentum of fc8.bias traded places: the same bytes, the same data checksum.
  await refusedEverywhere(t, editHeader(buf, (h) => {
    [h['fc8.bias'].data_offsets, h['momentum.fc8.bias'].data_offsets] = [h['momentum.fc8.bias'].data_offsets, h['fc8.bias'].data_offsets];
  }), edited, 'swapped ranges');
  await refusedEverywhere(t, editHeader(buf, (h) => { h.__metadata__!.lr = '10'; }), edited, 'lr');
  await refusedEverywhere(t, editHeader(buf, (h) => {
    const config = JSON.parse(h.__metadata__!.config) as NetConfig;
    config.layers.splice(-1, 0, { type: 'relu' });
    h.__metadata__!.config = JSON.stringify(config);
  }), edited, 'an extra layer');
  await refusedEverywhere(t, editHeader(buf, (h) => { delete h.__metadata__!.headerChecksum; }), { instanceOf: StateError, message: /is corrupt: a version 2 state without 'headerChecksum'/ }, 'no header checksum');
  await refusedEverywhere(t, editHeader(buf, (h) => { delete h.__metadata__!.checksum; }), { instanceOf: StateError, message: /is corrupt: a network state without 'checksum'/ }, 'no checksum');
  await refusedEverywhere(t, editHeader(buf, (h) => { h.__metadata__!.version = '3'; }), { instanceOf: StateError, message: /is a network state of version "3"; this build reads versions 1 and 2/ }, 'a newer version');
  // What the checksum covers: the table in data order and the metadata but the checksums.
  const file = decodeSafetensors(buf);
  t.is(headerChecksum(file.entries, file.metadata), file.metadata.headerChecksum);
  t.is(headerChecksum(new Map([...file.entries].reverse()), { ...file.metadata, checksum: 'x' }), file.metadata.headerChecksum, 'header order and the data checksum are not covered');
});

test('state v1: a checkpoint written before the header checksum still loads, from a file, a stream and the store', async (t) => {
  const net = tinyState();
  const meta = { runId: 'r', epoch: '0', batch: '3', attempt: '1', lr: '0.02' };
  const old = v1State(net, meta);
  t.true(old.equals(encodeSafetensors(stateTensors(net), decodeSafetensors(old).metadata)), 'the hand-built header is the encoder\'s layout');
  const want = encodeState(net, meta);
  t.true(encodeState(networkFromState(old, 'old'), meta).equals(want));
  t.true(encodeState((await readStateNetwork(chunks(old, 64), 'old')).net, meta).equals(want));
  const store = openStore(tmpDir('alexnet-hostile-', t));
  const key = runKeys('r').checkpoint(0, 3, 1);
  await store.put(key, old);
  await store.put(runKeys('r').latest, JSON.stringify({ key, epoch: 0, batch: 3, attempt: 1, lr: 0.02, writtenAt: new Date().toISOString() }));
  await putRecord(store, 'r');
  const loaded = await loadNewestCheckpoint(store, 'r');
  t.deepEqual(loaded!.warnings, []);
  t.like(loaded!.pointer, { key, epoch: 0, batch: 3, attempt: 1, lr: 0.02 });
  t.true(encodeState(loaded!.net, meta).equals(want), 'weights, momentum and RNG state exactly');
  // Its data is still checksummed.
  const flipped = Buffer.from(old);
  flipped[flipped.length - 20] ^= 1;
  t.throws(() => decodeState(flipped, 'old'), { instanceOf: StateError, message: /old is corrupt: its tensor bytes do not match the checksum/ });
});

// ---------------------------------------------------------------- 6: the config

const tinyWith = (layers: NetConfig['layers']): NetConfig => ({ ...modelConfig('tiny'), layers });

test('config limits: the built-in models pass; a config out of bounds is refused naming the field', (t) => {
  for (const name of presetNames()) t.notThrows(() => checkConfigLimits(modelConfig(name)), name);
  const tiny = modelConfig('tiny');
  const last = tiny.layers.length - 1;
  const cases: [unknown, RegExp][] = [
    [null, /Expected an object for config but received null/],
    [{ ...tiny, classes: '5' }, /for config\.classes but received "5"/],
    [{ ...tiny, classes: 2_000_000 }, /Expected integer between 1 and 1000000 for config\.classes/],
    [{ ...tiny, input: { ...tiny.input, height: 1e6 } }, /integer between 1 and 2048 for config\.input\.height but received 1000000/],
    [{ ...tiny, input: { ...tiny.input, channels: 3.5 } }, /for config\.input\.channels but received 3\.5/],
    [{ ...tiny, layers: 'many' }, /an array of 1 to 256 layers for config\.layers but received "many"/],
    [tinyWith([...tiny.layers.slice(0, -1), ...Array.from({ length: 300 }, () => ({ type: 'relu' as const })), tiny.layers[last]]), /for config\.layers but received array\(322\)/],
    [tinyWith(tiny.layers.map((l, i) => (i === 0 ? { ...l, kernel: 99 } : l))), /integer between 1 and 64 for config\.layers\[0\]\.kernel but received 99/],
    [tinyWith(tiny.layers.map((l, i) => (i === 0 ? { ...l, stride: '1' } : l)) as NetConfig['layers']), /for config\.layers\[0\]\.stride but received "1"/],
    [tinyWith(tiny.layers.map((l, i) => (i === 0 ? { ...l, out: 1e9 } : l))), /integer between 1 and 65536 for config\.layers\[0\]\.out/],
    [tinyWith(tiny.layers.map((l, i) => (l.type === 'lrn' && i < 3 ? { ...l, alpha: 'big' } : l)) as NetConfig['layers']), /a finite number for config\.layers\[2\]\.alpha but received "big"/],
    [tinyWith(tiny.layers.map((l, i) => (i === 1 ? { type: 'gelu' } : l)) as NetConfig['layers']), /for config\.layers\[1\]\.type but received "gelu"/],
    [tinyWith(tiny.layers.map((l, i) => (i === 0 ? { ...l, name: 'x'.repeat(200) } : l))), /at most 128 characters for config\.layers\[0\]\.name/],
    // Within every field's bounds, too large as a whole: 65536 x 65536 weights.
    [{ ...tiny, classes: 65_536, layers: [{ type: 'linear', name: 'a', out: 65_536 }, { type: 'linear', name: 'b', out: 65_536 }] }, /Expected at most 1e\+9 parameters for config but received a network of 4\.\d\de\+9/],
    [{ ...tiny, input: { channels: 64, height: 512, width: 512 }, layers: [{ type: 'conv', name: 'c', out: 64, kernel: 7, pad: 3 }, { type: 'linear', name: 'fc', out: 5 }] }, /Expected at most 2e\+10 multiply-adds per image for config/],
    [{ ...tiny, input: { channels: 1, height: 2048, width: 2048 }, layers: [{ type: 'conv', name: 'c', out: 16, kernel: 1 }, { type: 'linear', name: 'fc', out: 5 }] }, /Expected at most 5e\+7 activations per image for config/],
    // The structure, by the native check.
    [tinyWith(tiny.layers.slice(0, -1)), /the last layer must be a linear layer/],
  ];
  for (const [config, message] of cases) t.throws(() => checkConfigLimits(config), { message }, JSON.stringify(config).slice(0, 80));
  t.is(CONFIG_LIMITS.layers, 256);
});

test('config limits: a checkpoint whose config has 100,000 extra relu layers is refused at once, on every path', async (t) => {
  const net = tinyState();
  const tiny = modelConfig('tiny');
  const huge = tinyWith([...tiny.layers.slice(0, -1), ...Array.from({ length: 100_000 }, () => ({ type: 'relu' as const })), tiny.layers.at(-1)!]);
  const buf = v1State(net, {}, huge);  // no header checksum to stand in the way: the limits must
  const started = Date.now();
  await refusedEverywhere(t, buf, { instanceOf: StateError, message: /f\.safetensors: its config is refused: Expected an array of 1 to 256 layers for config\.layers but received array\(100022\) \(the limits: docs\/formats\.md\)/ }, '100,000 relus');
  const ms = Date.now() - started;
  t.log(`refused by decodeState and readStateNetwork in ${ms} ms`);
  t.true(ms < 3000, `${ms} ms`);
  // Fractions and strings where integers belong, in a checkpoint's config.
  const fractional = { ...tiny, layers: tiny.layers.map((l, i) => (i === 0 ? { ...l, kernel: 2.5 } : l)) };
  await refusedEverywhere(t, v1State(net, {}, fractional), { instanceOf: StateError, message: /its config is refused: Expected integer between 1 and 64 for config\.layers\[0\]\.kernel but received 2\.5/ }, 'a fractional kernel');
});

test('onnx export: the name allocator is linear (100,000 names under one base) and gives the smallest free suffix', (t) => {
  const fresh = nameAllocator(['a', 'a_3', 'b']);
  t.deepEqual(['a', 'a', 'a', 'c', 'a', 'b'].map(fresh), ['a_2', 'a_4', 'a_5', 'c', 'a_6', 'b_2']);
  const many = nameAllocator([]);
  const started = Date.now();
  let last = '';
  for (let i = 0; i < 100_000; i++) last = many('conv5.relu');
  t.is(last, 'conv5.relu_100000');
  t.true(Date.now() - started < 1000, `${Date.now() - started} ms for 100,000 names`);
});

test('onnx export: 8,000 relu layers export in well under a second (once 5 s: names were found in n^2 / 2 steps)', (t) => {
  const tiny = modelConfig('tiny');
  const net = new Network(tinyWith([...tiny.layers.slice(0, -1), ...Array.from({ length: 8000 }, () => ({ type: 'relu' as const })), tiny.layers.at(-1)!]), { seed: 1 });
  const started = Date.now();
  const bytes = exportOnnx(net);
  const ms = Date.now() - started;
  t.log(`8,000 extra relus: ${ms} ms, ${bytes.byteLength} bytes`);
  t.true(ms < 1500, `${ms} ms`);
});

// ---------------------------------------------------------------- a run in a file store

async function putRecord(store: ObjectStore, runId: string, record: Partial<RunRecord> = {}): Promise<void> {
  const full: RunRecord = { runId, datasetName: 'toy', model: 'tiny', classes: 5, seed: 1, createdAt: new Date().toISOString(), ...record };
  await store.put(runKeys(runId).record, JSON.stringify(full));
}

// Dataset 'toy' (S = 20, 5 classes) as inference reads it: manifest, mean image, classes.
async function putDataset(store: ObjectStore): Promise<void> {
  const keys = datasetKeys('toy');
  const S = 20, classes = 5;
  const split = { shards: 1, images: 10, skipped: 0, listed: 10, skippedByReason: {}, shardImages: [10] };
  await store.put(keys.manifest, JSON.stringify({ name: 'toy', source: 'x', imageSize: S, seed: 1, shardSize: 10, classes, splits: { train: split }, statsKey: keys.stats, createdAt: new Date().toISOString(), resizeKernel: 'linear' }));
  await store.put(keys.meanImage, encodeSafetensors({ mean: tensor('F32', [S, S, 3], new Float32Array(S * S * 3).fill(100)) }));
  await store.put(keys.classes, JSON.stringify(Array.from({ length: classes }, (_, i) => `c${i}`)));
}

// A file store with run 'r' (run.json: tiny, 5 classes, dataset toy) and two checkpoints
// saved as training saves them, latest.json naming the second.
async function makeRun(t: ExecutionContext): Promise<{ dir: string; uri: string; store: ObjectStore; keys: string[]; net: Network }> {
  const dir = tmpDir('alexnet-hostile-', t);
  const uri = `file://${dir}`;
  const store = openStore(uri);
  await putDataset(store);
  await putRecord(store, 'r');
  const net = tinyState();
  const first = await saveCheckpoint(store, 'r', net, { epoch: 0, batch: 0 }, { attempt: 1, lr: 0.01 });
  const second = await saveCheckpoint(store, 'r', net, { epoch: 0, batch: 5 }, { attempt: 1, lr: 0.01 });
  return { dir, uri, store, keys: [first.key, second.key], net };
}

test('run.json: a valid checkpoint whose config is not the run\'s is passed over by training and refused by inference', async (t) => {
  const { uri, store, keys } = await makeRun(t);
  // Checksums all consistent (written by encodeState): only run.json can tell.
  const tiny = modelConfig('tiny');
  for (const [what, config, message] of [
    ['an extra relu', tinyWith([...tiny.layers.slice(0, -1), { type: 'relu' }, tiny.layers.at(-1)!]), /its layer 21 is \{"type":"relu"\}, model tiny's \{"type":"linear","name":"fc8"/],
    ['7 classes', modelConfig('tiny', { classes: 7 }), /it has 7 classes, the run 5/],
    ['wider fc6', tinyWith(tiny.layers.map((l) => (l.type === 'linear' && l.name === 'fc6' ? { ...l, out: 32 } : l))), /its layer 15 is \{"type":"linear","name":"fc6","out":32/],
  ] as const) {
    await store.put(keys[1], encodeState(new Network(config, { seed: 2 }), { runId: 'r', epoch: '0', batch: '5', attempt: '1', lr: '0.01' }));
    const loaded = await loadNewestCheckpoint(store, 'r');
    t.is(loaded!.pointer.key, keys[0], what);
    t.is(loaded!.warnings.length, 1);
    t.regex(loaded!.warnings[0], new RegExp(`checkpoint ${keys[1]} passed over: ${keys[1]} does not match run r's runs/r/run\\.json: ${message.source}`));
    const e = await t.throwsAsync(loadInferenceModel({ store: uri, run: 'r' }), { instanceOf: StateError, message: new RegExp(`^${keys[1]} does not match run r's runs/r/run\\.json: .*Use an earlier checkpoint`) });
    t.is((e as StateError).code, 'CORRUPT_STATE');
  }
  // run.json's classes changed instead: every checkpoint disagrees, and training says so.
  await putRecord(store, 'r', { classes: 6 });
  await t.throwsAsync(loadNewestCheckpoint(store, 'r'), { instanceOf: StateError, message: /^run r: no valid checkpoint \(.*it has 5 classes, the run 6/ });
});

// ---------------------------------------------------------------- 7: pointers and JSON

test('getJson: bytes that are not JSON are a CORRUPT_STATE error naming the key and the store', async (t) => {
  const store = openStore(tmpDir('alexnet-hostile-', t));
  await store.put('a/b.json', 'not json');
  const e = await t.throwsAsync(getJson(store, 'a/b.json'), { instanceOf: StateError, message: /^a\/b\.json in file:\/\/.* is corrupt: it is not JSON \(Unexpected token .*\)\. Restore it/ });
  t.is((e as StateError).code, 'CORRUPT_STATE');
});

test('latest.json, serving.json, run.json: null, not JSON or the wrong fields are refused by name, never read as "no checkpoint"', async (t) => {
  const { uri, store, keys } = await makeRun(t);
  const latest = runKeys('r').latest;
  const good = (await store.get(latest)).toString();
  const pointer = JSON.parse(good) as Record<string, unknown>;
  for (const [body, message] of [
    ['null', /it holds null, not a pointer object/],
    ['not json', /it is not JSON/],
    ['[]', /it holds array\(0\), not a pointer object/],
    [JSON.stringify({ ...pointer, key: 'runs/other/checkpoints/00000-0000000-001.safetensors' }), /its key "runs\/other\/.*" is not a checkpoint of run r/],
    [JSON.stringify({ ...pointer, key: '../../etc/passwd' }), /its key "\.\.\/\.\.\/etc\/passwd" is not a checkpoint of run r/],
    [JSON.stringify({ ...pointer, batch: 9 }), /its batch is 9 but its key .* says 5/],
    [JSON.stringify({ ...pointer, attempt: '1' }), /its attempt is "1", not a non-negative integer/],
    [JSON.stringify({ ...pointer, lr: null }), /its lr is null, not a non-negative number/],
  ] as const) {
    await store.put(latest, body);
    const named = new RegExp(`^runs/r/latest\\.json in file://.* is corrupt: ${message.source}`);
    await t.throwsAsync(readLatest(store, 'r'), { instanceOf: StateError, message: named }, body);
    await t.throwsAsync(loadNewestCheckpoint(store, 'r'), { instanceOf: StateError, message: named }, `training, ${body}`);
    await t.throwsAsync(resolveCheckpoint(store, { run: 'r' }), { instanceOf: StateError, message: named }, `inference, ${body}`);
  }
  await store.put(latest, good);
  t.is((await loadNewestCheckpoint(store, 'r'))!.pointer.key, keys[1]);

  const serving = runKeys('r').serving;
  for (const [body, message] of [
    ['null', /it holds null, not a pointer object/],
    ['{"checkpoint"', /it is not JSON/],
    [JSON.stringify({ checkpoint: 7 }), /its checkpoint 7 is not a checkpoint of run r/],
    [JSON.stringify({ checkpoint: keys[0], top1Error: '0.1' }), /its top1Error is "0\.1", not a number/],
  ] as const) {
    await store.put(serving, body);
    const named = new RegExp(`^runs/r/serving\\.json in file://.* is corrupt: ${message.source}.*remove it \\(inference then serves the newest checkpoint`);
    await t.throwsAsync(readServing(store, 'r'), { instanceOf: StateError, message: named }, body);
    await t.throwsAsync(resolveCheckpoint(store, { run: 'r' }), { instanceOf: StateError, message: named }, `inference, ${body}`);
    // A promotion does not overwrite what it cannot read.
    await t.throwsAsync(promoteCheckpoint({ store: uri, runId: 'r', checkpointKey: keys[1], split: 'test', crops: 1, images: 10, top1Error: 0.1, top5Error: 0, report: 'x', evaluation: 'e' }), { instanceOf: StateError, message: named });
    t.is((await store.get(serving)).toString(), body);
  }
  await store.put(serving, JSON.stringify({ checkpoint: keys[0], top1Error: 0.5 }));
  t.like(await resolveCheckpoint(store, { run: 'r' }), { key: keys[0], from: 'serving' });

  const record = runKeys('r').record;
  for (const [body, message] of [
    ['null', /it holds null, not a run record object/],
    ['{', /it is not JSON/],
    [JSON.stringify({ runId: 'r', datasetName: 'toy', model: 'tiny', classes: '5' }), /its classes is "5", not a positive integer/],
  ] as const) {
    await store.put(record, body);
    const named = new RegExp(`^runs/r/run\\.json in file://.* is corrupt: ${message.source}`);
    await t.throwsAsync(loadNewestCheckpoint(store, 'r'), { instanceOf: StateError, message: named }, `training, ${body}`);
    await t.throwsAsync(loadInferenceModel({ store: uri, run: 'r' }), { instanceOf: StateError, message: named }, `inference, ${body}`);
  }
});

// ---------------------------------------------------------------- the CLI

// classify and export of run r in `uri`: exit 1 and one line naming what is wrong (no stack).
function cliRefuses(t: ExecutionContext, uri: string, dir: string, message: RegExp, what: string): void {
  const image = path.join(dir, 'img.jpg');
  const out = path.join(dir, 'm.onnx');
  for (const args of [['classify', image, '--store', uri, '--run', 'r'], ['export', '--onnx', out, '--store', uri, '--run', 'r']]) {
    const r = alexnet(...args);
    t.is(r.status, 1, `${what}: ${args[0]}: ${r.stderr}`);
    t.regex(r.stderr, message, `${what}: ${args[0]}`);
    t.notRegex(r.stderr, /^\s+at /m, `${what}: ${args[0]}: a message, not a stack`);
  }
  t.false(fs.existsSync(out));
}

test.serial('cli classify and export: a version-1 checkpoint works; tampered checkpoints and pointers are refused with a message', async (t) => {
  const { dir, uri, store, keys, net } = await makeRun(t);
  await sharp({ create: { width: 24, height: 20, channels: 3, background: { r: 200, g: 30, b: 90 } } }).jpeg().toFile(path.join(dir, 'img.jpg'));
  const meta = { runId: 'r', epoch: '0', batch: '5', attempt: '1', lr: '0.01' };
  await store.put(keys[1], v1State(net, meta));
  let r = alexnet('classify', path.join(dir, 'img.jpg'), '--store', uri, '--run', 'r');
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /"top":\[\{"class":"c\d"/);
  const out = path.join(dir, 'v1.onnx');
  r = alexnet('export', '--onnx', out, '--store', uri, '--run', 'r');
  t.is(r.status, 0, r.stderr);
  fs.rmSync(out);

  // fc8.bias read from conv1.weight's bytes: once a changed top class, now refused.
  await store.put(keys[1], editHeader(encodeState(net, meta), (h) => { h['fc8.bias'].data_offsets = [0, 20]; }));
  cliRefuses(t, uri, dir, /^alexnet: SafetensorsError: runs\/r\/checkpoints\/00000-0000005-001\.safetensors is not a valid safetensors file: .*overlapping tensor/m, 'overlapping offsets');
  // 100,000 relus in a version-1 checkpoint: refused before a network is built.
  const tiny = modelConfig('tiny');
  await store.put(keys[1], v1State(net, meta, tinyWith([...tiny.layers.slice(0, -1), ...Array.from({ length: 100_000 }, () => ({ type: 'relu' as const })), tiny.layers.at(-1)!])));
  cliRefuses(t, uri, dir, /^alexnet: StateError: runs\/r\/checkpoints\/00000-0000005-001\.safetensors: its config is refused: Expected an array of 1 to 256 layers for config\.layers/m, '100,000 relus');
  await store.put(keys[1], encodeState(net, meta));
  for (const body of ['null', 'not json']) {
    await store.put(runKeys('r').latest, body);
    cliRefuses(t, uri, dir, /^alexnet: StateError: runs\/r\/latest\.json in file:\/\/.* is corrupt: /m, `latest.json ${body}`);
  }
});

test('retention: an unreadable serving.json or report stops the pass (naming it) instead of deleting a checkpoint it may name', async (t) => {
  const { store, keys, net } = await makeRun(t);
  for (let batch = 10; batch <= 40; batch += 10) await saveCheckpoint(store, 'r', net, { epoch: 0, batch }, { attempt: 1, lr: 0.01 });
  await store.put(runKeys('r').serving, 'not json');
  const latest = (await readLatest(store, 'r'))!.key;
  await t.throwsAsync(pruneCheckpoints(store, 'r', { keepLast: 1 }, latest), { instanceOf: StateError, message: /runs\/r\/serving\.json in .* is corrupt/ });
  t.truthy(await store.head(keys[1]), 'nothing deleted');
  // The same for a report that may name a checkpoint.
  await store.delete(runKeys('r').serving);
  await store.put(`${runKeys('r').reports}eval-1/report.json`, '{"checkpointKey": ');
  await t.throwsAsync(pruneCheckpoints(store, 'r', { keepLast: 1 }, latest), { instanceOf: StateError, message: /eval-1\/report\.json in .* is corrupt/ });
  t.truthy(await store.head(keys[1]), 'nothing deleted');
});
