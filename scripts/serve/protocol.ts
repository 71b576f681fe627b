// The HTTP side of alexnet serve: JSON answers and errors, request bodies with a size
// limit, secrets kept out of messages, and the KServe v2 / Open Inference Protocol mapping
// of an inference request and its answer.
//
// KServe infer takes one input, either
//   images  FP32  [N, 3, crop, crop]  the standard one: per image the central crop x crop
//                 patch of the image resized (shorter side to S, the run's kernel) and
//                 centre-cropped to SxS, RGB in 0..255, NCHW; the server subtracts the mean
//                 image's centre crop (the model's metadata says S, crop and the kernel)
//   image   BYTES [N] (or [N, 1])    an extension: the N image files, base64-encoded, which
//                 the server decodes and preprocesses itself (classifyImages' path)
// "data" is a flat row-major array or nested arrays (both are accepted), or, with Triton's
// binary tensor extension (the Inference-Header-Content-Length header), raw little-endian
// float32 (images) or 4-byte-length-prefixed elements (image) after the JSON.
// parameters.top_k: classes in the top-k outputs (default options.topK). The answer has five
// outputs (or those the request's "outputs" names), K = the classes, k = min(top_k, K):
//   probabilities  FP32  [N, K]  every class's probability (the softmax, averaged over the
//                                crops), in class-index order (parameters.class_ids)
//   classes        BYTES [N, k]  the k most probable class ids (dataset folder names / wnids)
//   names          BYTES [N, k]  their human-readable names
//   top            BYTES [N]     per image the JSON {"top": [{"class","name","probability"}...]}
//                                or {"error": reason}: what `alexnet classify` prints
//   error          BYTES [N]     "" for a classified image, else why it could not be read
// An unreadable image file does not fail the others: its rows of classes/names are "" and
// of probabilities 0, and "top"/"error" carry the reason. When no image of the request can
// be read the request fails: 400 {"error": "image 0: reason; ..."}.
//
// Hostile requests are refused while they arrive, before anything is built per element:
// a shape declaring more than --max-queue images (413, from the binary extension's JSON part
// alone), a JSON text holding more strings or values than that many images could need or
// nesting deeper than MAX_JSON_DEPTH (413 / 400, by JsonScanner, before JSON.parse).
import type * as http from 'http';

import { topClasses } from '../../activities/classify';
import type { InferenceModel } from '../../activities/model';
import type { Scored } from './inference';
import { JsonScanner, type JsonScanLimits } from './json-scanner';

export const OUTPUT_NAMES = ['probabilities', 'classes', 'names', 'top', 'error'] as const;
export type OutputName = typeof OUTPUT_NAMES[number];

export class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly headers: Record<string, string> = {}) {
    super(message);
  }
}

// Secrets come from the environment (the S3 and Temporal keys): never let one into a log
// line or an error answer, whatever a library put into a message.
const SECRET_VARIABLES = ['AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_ACCESS_KEY_ID', 'TEMPORAL_API_KEY'];
export function scrubSecrets(text: string): string {
  let out = text;
  for (const v of SECRET_VARIABLES) {
    const secret = process.env[v];
    if (secret && secret.length >= 4) out = out.split(secret).join('***');
  }
  return out;
}

export const message = (e: unknown) => scrubSecrets(e instanceof Error ? e.message : String(e));

export function sendText(res: http.ServerResponse, status: number, text: string, contentType: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

export const send = (res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) =>
  sendText(res, status, JSON.stringify(body), 'application/json', headers);

// What one inference request may hold, checked while its bytes arrive (readInferRequest),
// so that a request declaring or holding millions of elements is refused before anything
// is built per element.
export interface InferLimits {
  crop: number;       // the model's input side: one image is 3 x crop x crop values
  maxImages: number;  // images one request may hold (--max-queue)
}

// How deep arrays and objects may nest in a request's JSON: a real request nests at most
// 7 deep (data as [N][3][C][C] inside {"inputs": [{...}]}); deeper ones are refused (400)
// before JSON.parse, and nothing recursive ever meets them.
export const MAX_JSON_DEPTH = 32;
// Strings and values a request's JSON may hold besides its images': names, datatypes, the
// id, parameters, outputs.
export const JSON_MARGIN = 1024;

export const tooManyImages = (count: number, maxImages: number) =>
  new HttpError(413, `${count} images in one request, more than the server queues (--max-queue ${maxImages}): send at most ${maxImages} per request`);

// The request's body, refused with 413 once it is over `limit`. `inspect` sees each chunk
// as it arrives (at `offset`, with the body so far) and may refuse the request early by
// throwing. A body refused before its end is not read further and its connection closes
// (Connection: close on the answer); one whose connection closes first (the client went,
// or --request-timeout) rejects with 408. The body is one buffer, preallocated from
// Content-Length when the client declares it (no Buffer.concat of chunks: one copy).
export function readBody(req: http.IncomingMessage, limit: number, inspect?: (chunk: Buffer, offset: number, body: Buffer) => void): Promise<Buffer> {
  const header = req.headers['content-length'];
  const declared = header === undefined ? undefined : Number(header);
  const over = (size: string) => new HttpError(413, `request body ${size} is over the limit of ${limit} bytes (--max-body)`, { Connection: 'close' });
  if (declared !== undefined && declared > limit) return Promise.reject(over(`of ${declared} bytes`));
  return new Promise((resolve, reject) => {
    let body = Buffer.alloc(0);  // allocated when the first bytes come: a client that only declares a length costs nothing
    let size = 0;
    let settled = false;
    const refuse = (e: unknown) => {
      if (settled) return;
      settled = true;
      req.off('data', onData);
      req.resume();  // the rest is dropped as it comes, until the answer closes the connection
      reject(e instanceof HttpError ? new HttpError(e.status, e.message, { ...e.headers, Connection: 'close' }) : e);
    };
    const onData = (chunk: Buffer) => {
      if (size + chunk.length > limit) return refuse(over(`of more than ${limit} bytes`));
      if (size + chunk.length > body.length) {  // the declared length, else grown by doubling
        const grown = Buffer.allocUnsafe(declared !== undefined && Number.isSafeInteger(declared) && declared >= size + chunk.length
          ? declared : Math.min(limit, Math.max(2 * body.length, size + chunk.length, 64 << 10)));
        body.copy(grown, 0, 0, size);
        body = grown;
      }
      chunk.copy(body, size);
      const offset = size;
      size += chunk.length;
      try {
        inspect?.(chunk, offset, body.subarray(0, size));
      } catch (e) {
        refuse(e);
      }
    };
    req.on('data', onData);
    req.on('end', () => {
      if (settled) return;
      settled = true;
      resolve(body.subarray(0, size));
    });
    const closed = () => refuse(new HttpError(408, `the request body did not arrive: the connection closed after ${size}${declared !== undefined ? ` of ${declared}` : ''} bytes`));
    req.on('error', closed);
    req.on('close', () => { if (!req.complete) closed(); });
  });
}

// An infer request's JSON limits: every image's worth of strings (one base64 file each) or
// values (3 x crop x crop numbers each), plus JSON_MARGIN, nested at most MAX_JSON_DEPTH.
export function inferScanLimits(limits: InferLimits): JsonScanLimits {
  const { crop, maxImages } = limits;
  return {
    maxDepth: MAX_JSON_DEPTH,
    tooDeep: (field, limit) => new HttpError(400, `${field} nests arrays and objects more than ${limit} deep, more than this server reads`),
    maxStrings: maxImages + JSON_MARGIN,
    maxValues: maxImages * 3 * crop * crop + JSON_MARGIN,
    tooMany: (what, limit) => new HttpError(413, what === 'strings'
      ? `the request holds more than ${limit} strings, more than ${maxImages} image files (--max-queue) and the request's names could need: send at most ${maxImages} images per request`
      : `the request holds more than ${limit} values, more than ${maxImages} images of 3x${crop}x${crop} (--max-queue) and the request's names could need: send at most ${maxImages} images per request`),
  };
}

const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;  // base64, or its URL-safe form
function decodeBase64(s: string): Buffer | undefined {
  const t = s.replace(/\s+/g, '');
  if (t.length % 4 === 1 || !BASE64.test(t)) return undefined;
  return Buffer.from(t, 'base64');
}

// A value of the request quoted in an answer: its JSON, at most QUOTED_CHARS of it (a
// refused field may be megabytes).
const QUOTED_CHARS = 80;
function quoted(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > QUOTED_CHARS ? `${text.slice(0, QUOTED_CHARS)}...` : text;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export function topKParameter(value: unknown, where: string): number | undefined {
  if (value === undefined) return undefined;
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) throw new HttpError(400, `${where} must be an integer >= 1, got ${quoted(value)}`);
  return n;
}

export function cropsParameter(value: string | null, where: string): 1 | 10 | undefined {
  if (value === null) return undefined;
  if (value === '1' || value === '10') return Number(value) as 1 | 10;
  throw new HttpError(400, `${where} must be 1 (the centre crop) or 10 (the paper's ten patches), got ${quoted(value)}`);
}

// A parsed KServe v2 inference request.
export type InferInput =
  | { kind: 'files'; images: (Buffer | string)[] }            // the bytes, or why they are not an image file
  | { kind: 'tensor'; count: number; pixels: Float32Array };  // (count, 3, crop, crop)

export interface InferRequest {
  id?: string;
  input: InferInput;
  topK?: number;
  outputs: OutputName[];
}

// A request's JSON, checked against the model and the limits, its data not yet read.
interface InferHeader {
  id?: string;
  name: 'images' | 'image';
  dims: number[];
  data: unknown;            // the JSON "data", when the input has no binary data
  binarySize?: number;      // parameters.binary_data_size: the input's data is the binary part
  topK?: number;
  outputs: OutputName[];
}

const shapeText = (dims: unknown) => quoted(dims).replace(/,/g, ', ');

// The input's description (name, datatype, shape, parameters) and the request's
// parameters and outputs, from its JSON: everything but the data, so a request declaring
// more images than it may hold is refused (413) before its data is read.
function parseInferHeader(text: Buffer, limits: InferLimits, binary: boolean): InferHeader {
  let json: unknown;
  try {
    json = JSON.parse(text.toString('utf8'));
  } catch (e) {
    throw new HttpError(400, `malformed JSON: ${(e as Error).message}`);
  }
  if (!isObject(json)) throw new HttpError(400, 'the request must be a JSON object {"inputs": [...]}');
  if (json.id !== undefined && typeof json.id !== 'string') throw new HttpError(400, '"id" must be a string');
  const C = limits.crop;
  const expected = `[N, 3, ${C}, ${C}]`;
  const usage = `this model takes one input: "images", datatype FP32, shape ${expected} (N images, RGB, the central ${C}x${C} crop, 0..255, NCHW), ` +
    'or "image", datatype BYTES, shape [N], the N image files base64-encoded';
  if (!Array.isArray(json.inputs) || json.inputs.length === 0) throw new HttpError(400, `"inputs" must be a non-empty array: ${usage}`);
  if (json.inputs.length !== 1) throw new HttpError(400, `${json.inputs.length} inputs given: ${usage}`);
  const input: unknown = json.inputs[0];
  if (!isObject(input)) throw new HttpError(400, `an input must be an object: ${usage}`);
  const shape = input.shape;
  const dims = Array.isArray(shape) && shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0) ? shape as number[] : undefined;
  if (input.name === 'images') {
    if (input.datatype !== 'FP32') throw new HttpError(400, `input "images" has datatype ${quoted(input.datatype)}; expected FP32 (${usage})`);
    if (!dims || dims.length !== 4 || dims[1] !== 3 || dims[2] !== C || dims[3] !== C) {
      throw new HttpError(400, `input "images" has shape ${shapeText(shape)}; expected ${expected}: N images, 3 RGB channels, the model's ${C}x${C} crop (NCHW)`);
    }
  } else if (input.name === 'image') {
    if (input.datatype !== 'BYTES') throw new HttpError(400, `input "image" has datatype ${quoted(input.datatype)}; expected BYTES (${usage})`);
    if (!dims || dims.length === 0 || dims.length > 2 || (dims.length === 2 && dims[1] !== 1)) {
      throw new HttpError(400, `input "image" has shape ${shapeText(shape)}; expected [N] (or [N, 1]): one image file per element`);
    }
  } else {
    throw new HttpError(400, `unknown input ${quoted(input.name)}: ${usage}`);
  }
  if (dims[0] > limits.maxImages) throw tooManyImages(dims[0], limits.maxImages);
  const binarySize = isObject(input.parameters) ? input.parameters.binary_data_size : undefined;
  if (binarySize !== undefined && (!binary || !Number.isSafeInteger(binarySize) || (binarySize as number) < 0)) {
    throw new HttpError(400, `input ${quoted(input.name)}: parameters.binary_data_size ${quoted(binarySize)} is not the length of binary data after the JSON (Inference-Header-Content-Length)`);
  }
  if (json.parameters !== undefined && !isObject(json.parameters)) throw new HttpError(400, '"parameters" must be an object');
  const topK = topKParameter(json.parameters?.top_k, 'parameters.top_k');
  let outputs: OutputName[] = [...OUTPUT_NAMES];
  if (json.outputs !== undefined) {
    if (!Array.isArray(json.outputs)) throw new HttpError(400, '"outputs" must be an array of {"name"}');
    outputs = (json.outputs as unknown[]).map((o) => {
      const name = isObject(o) ? o.name : undefined;
      if (!OUTPUT_NAMES.includes(name as OutputName)) throw new HttpError(400, `unknown output ${quoted(name)}: the outputs are ${OUTPUT_NAMES.join(', ')}`);
      return name as OutputName;
    });
  }
  return { id: json.id as string | undefined, name: input.name, dims, data: input.data, binarySize: binarySize as number | undefined, topK, outputs };
}

function checkBinarySize(header: InferHeader, bytes: number): void {
  if (header.binarySize !== undefined && header.binarySize !== bytes) {
    throw new HttpError(400, `input ${quoted(header.name)}: parameters.binary_data_size ${header.binarySize} does not match the ${bytes} bytes after the JSON (Inference-Header-Content-Length)`);
  }
}

// The input's elements, from the JSON "data" or the binary part: at most as many as the
// shape declares are built (a binary walk stops at the first one more).
function inferInput(header: InferHeader, binary: Buffer | undefined): InferInput {
  const { name, dims } = header;
  const raw = header.binarySize !== undefined ? binary : undefined;
  if (raw) checkBinarySize(header, raw.length);
  if (name === 'images') {
    const count = dims[0];
    const length = count * dims[1] * dims[2] * dims[3];
    let pixels: Float32Array;
    if (raw) {
      if (raw.length !== length * 4) throw new HttpError(400, `input "images" has shape ${shapeText(dims)} (${length} values) but ${raw.length} bytes of binary data (${length * 4} expected: little-endian float32)`);
      pixels = new Float32Array(length);
      new Uint8Array(pixels.buffer).set(raw);
    } else {
      if (!Array.isArray(header.data)) throw new HttpError(400, 'input "images" needs "data": an array of numbers (flat, row-major, or nested)');
      const data = (header.data as unknown[]).flat(Infinity as 1);
      if (data.length !== length) throw new HttpError(400, `input "images" has shape ${shapeText(dims)} (${length} values) but ${data.length} data elements`);
      pixels = new Float32Array(length);
      for (let i = 0; i < length; i++) {
        const v = data[i];
        if (typeof v !== 'number') throw new HttpError(400, `input "images" element ${i} is ${quoted(v)}, not a number`);
        pixels[i] = v;
      }
    }
    const bad = pixels.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) throw new HttpError(400, `input "images" element ${bad} is not a finite number`);
    if (count === 0) throw new HttpError(400, 'input "images" holds no image (N = 0)');
    return { kind: 'tensor', count, pixels };
  }
  const count = dims[0];
  let images: (Buffer | string)[];
  if (raw) {
    images = [];
    for (let at = 0; at < raw.length;) {
      if (images.length === count) throw new HttpError(400, `input "image" has shape ${shapeText(dims)} but more binary data elements`);
      if (at + 4 > raw.length) throw new HttpError(400, 'input "image": binary data ends inside an element\'s 4-byte length');
      const n = raw.readUInt32LE(at);
      if (at + 4 + n > raw.length) throw new HttpError(400, `input "image": binary element ${images.length} of ${n} bytes runs past the data`);
      images.push(raw.subarray(at + 4, at + 4 + n));
      at += 4 + n;
    }
  } else {
    if (!Array.isArray(header.data)) throw new HttpError(400, 'input "image" needs "data": an array of base64 strings');
    const data = (header.data as unknown[]).flat(2);
    const bad = data.findIndex((d) => typeof d !== 'string');
    if (bad >= 0) throw new HttpError(400, `input "image" element ${bad} is not a string: BYTES elements are the image files, base64-encoded`);
    if (data.length !== count) throw new HttpError(400, `input "image" has shape ${shapeText(dims)} but ${data.length} data elements`);
    images = (data as string[]).map((s) => decodeBase64(s) ?? 'not base64: the image file must be base64-encoded');
  }
  if (images.length !== count) throw new HttpError(400, `input "image" has shape ${shapeText(dims)} but ${images.length} data elements`);
  if (images.length === 0) throw new HttpError(400, 'input "image" holds no image');
  return { kind: 'files', images };
}

// A KServe v2 infer request read from its body as it arrives: its JSON scanned (JsonScanner,
// inferScanLimits) and, with Triton's binary extension, the JSON part (its length in the
// Inference-Header-Content-Length header) checked against the model and the limits as soon
// as it is in, before the binary part is read. Refused early: 413 (too many images,
// strings or values) or 400 (too deep, malformed), the connection closed.
export async function readInferRequest(req: http.IncomingMessage, maxBodyBytes: number, limits: InferLimits): Promise<InferRequest> {
  const lengthHeader = req.headers['inference-header-content-length'];
  const headerText = Array.isArray(lengthHeader) ? lengthHeader[0] : lengthHeader;
  const declared = req.headers['content-length'] === undefined ? undefined : Number(req.headers['content-length']);
  const badLength = (size: number | undefined) =>
    new HttpError(400, `Inference-Header-Content-Length ${quoted(headerText)} is not a length within the ${size ?? 'whole'}-byte body`);
  let jsonEnd: number | undefined;  // the binary extension's JSON length; else the JSON is the whole body
  if (headerText !== undefined) {
    jsonEnd = Number(headerText);
    if (!Number.isSafeInteger(jsonEnd) || jsonEnd < 0 || (declared !== undefined && jsonEnd > declared) || jsonEnd > maxBodyBytes) throw badLength(declared);
  }
  const scanner = new JsonScanner(inferScanLimits(limits));
  let header: InferHeader | undefined;
  const body = await readBody(req, maxBodyBytes, (chunk, offset, sofar) => {
    const json = jsonEnd === undefined ? chunk : chunk.subarray(0, Math.max(0, jsonEnd - offset));
    if (json.length > 0) scanner.scan(json);
    if (jsonEnd !== undefined && header === undefined && sofar.length >= jsonEnd) {
      header = parseInferHeader(sofar.subarray(0, jsonEnd), limits, true);
      if (declared !== undefined) checkBinarySize(header, declared - jsonEnd);
    }
  });
  if (jsonEnd === undefined) return withInput(parseInferHeader(body, limits, false), undefined);
  if (body.length < jsonEnd) throw badLength(body.length);
  return withInput(header ?? parseInferHeader(body.subarray(0, jsonEnd), limits, true), body.subarray(jsonEnd));
}

function withInput(header: InferHeader, binary: Buffer | undefined): InferRequest {
  return { id: header.id, input: inferInput(header, binary), topK: header.topK, outputs: header.outputs };
}

export function inferOutputs(answers: Scored[], model: Pick<InferenceModel, 'classIds' | 'classNames'>, topK: number, wanted: OutputName[]) {
  const K = model.classIds.length;
  const k = Math.min(topK, K);
  const tops = answers.map((a) => ('probabilities' in a ? topClasses(a.probabilities, 0, K, k, model) : undefined));
  const rows = (f: (p: { class: string; name: string }) => string) => tops.flatMap((top) => (top ? top.map(f) : new Array<string>(k).fill('')));
  const n = answers.length;
  const all: Record<OutputName, () => { datatype: string; shape: number[]; data: (string | number)[] }> = {
    probabilities: () => ({ datatype: 'FP32', shape: [n, K], data: answers.flatMap((a) => ('probabilities' in a ? Array.from(a.probabilities) : new Array<number>(K).fill(0))) }),
    classes: () => ({ datatype: 'BYTES', shape: [n, k], data: rows((p) => p.class) }),
    names: () => ({ datatype: 'BYTES', shape: [n, k], data: rows((p) => p.name) }),
    top: () => ({ datatype: 'BYTES', shape: [n], data: answers.map((a, i) => JSON.stringify('error' in a ? { error: a.error } : { top: tops[i] })) }),
    error: () => ({ datatype: 'BYTES', shape: [n], data: answers.map((a) => ('error' in a ? a.error : '')) }),
  };
  return wanted.map((name) => ({ name, ...all[name]() }));
}
