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
import type * as http from 'http';

import { topClasses } from '../../activities/classify';
import type { InferenceModel } from '../../activities/model';
import type { Scored } from './inference';

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

// The request's body, refused with 413 (and the connection closed) once it is over `limit`.
export function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  const over = (size: string) => new HttpError(413, `request body ${size} is over the limit of ${limit} bytes (--max-body)`, { Connection: 'close' });
  if (declared > limit) return Promise.reject(over(`of ${declared} bytes`));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        reject(over(`of more than ${limit} bytes`));
        req.removeAllListeners('data');
        req.resume();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;  // base64, or its URL-safe form
function decodeBase64(s: string): Buffer | undefined {
  const t = s.replace(/\s+/g, '');
  if (t.length % 4 === 1 || !BASE64.test(t)) return undefined;
  return Buffer.from(t, 'base64');
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export function topKParameter(value: unknown, where: string): number | undefined {
  if (value === undefined) return undefined;
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) throw new HttpError(400, `${where} must be an integer >= 1, got ${JSON.stringify(value)}`);
  return n;
}

export function cropsParameter(value: string | null, where: string): 1 | 10 | undefined {
  if (value === null) return undefined;
  if (value === '1' || value === '10') return Number(value) as 1 | 10;
  throw new HttpError(400, `${where} must be 1 (the centre crop) or 10 (the paper's ten patches), got ${JSON.stringify(value)}`);
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

const shapeText = (dims: unknown) => JSON.stringify(dims).replace(/,/g, ', ');

// The request body's JSON and, with Triton's binary tensor extension, the binary part after it.
function splitBinary(body: Buffer, headerLength: string | undefined): { json: Buffer; binary?: Buffer } {
  if (headerLength === undefined) return { json: body };
  const n = Number(headerLength);
  if (!Number.isInteger(n) || n < 0 || n > body.length) throw new HttpError(400, `Inference-Header-Content-Length ${JSON.stringify(headerLength)} is not a length within the ${body.length}-byte body`);
  return { json: body.subarray(0, n), binary: body.subarray(n) };
}

export function parseInferRequest(body: Buffer, model: { crop: number }, headerLength?: string): InferRequest {
  const { json: jsonBytes, binary } = splitBinary(body, headerLength);
  let json: unknown;
  try {
    json = JSON.parse(jsonBytes.toString('utf8'));
  } catch (e) {
    throw new HttpError(400, `malformed JSON: ${(e as Error).message}`);
  }
  if (!isObject(json)) throw new HttpError(400, 'the request must be a JSON object {"inputs": [...]}');
  if (json.id !== undefined && typeof json.id !== 'string') throw new HttpError(400, '"id" must be a string');
  const C = model.crop;
  const expected = `[N, 3, ${C}, ${C}]`;
  const usage = `this model takes one input: "images", datatype FP32, shape ${expected} (N images, RGB, the central ${C}x${C} crop, 0..255, NCHW), ` +
    'or "image", datatype BYTES, shape [N], the N image files base64-encoded';
  if (!Array.isArray(json.inputs) || json.inputs.length === 0) throw new HttpError(400, `"inputs" must be a non-empty array: ${usage}`);
  if (json.inputs.length !== 1) throw new HttpError(400, `${json.inputs.length} inputs given: ${usage}`);
  const input: unknown = json.inputs[0];
  if (!isObject(input)) throw new HttpError(400, `an input must be an object: ${usage}`);
  const binarySize = isObject(input.parameters) ? input.parameters.binary_data_size : undefined;
  if (binarySize !== undefined && (!binary || !Number.isInteger(binarySize) || (binarySize as number) !== binary.length)) {
    throw new HttpError(400, `input ${JSON.stringify(input.name)}: parameters.binary_data_size ${JSON.stringify(binarySize)} does not match the ${binary?.length ?? 0} bytes after the JSON (Inference-Header-Content-Length)`);
  }
  const raw = binarySize !== undefined ? binary : undefined;
  const shape = input.shape;
  const dims = Array.isArray(shape) && shape.every((d) => Number.isInteger(d) && (d as number) >= 0) ? shape as number[] : undefined;
  let parsed: InferInput;
  if (input.name === 'images') {
    if (input.datatype !== 'FP32') throw new HttpError(400, `input "images" has datatype ${JSON.stringify(input.datatype)}; expected FP32 (${usage})`);
    if (!dims || dims.length !== 4 || dims[1] !== 3 || dims[2] !== C || dims[3] !== C) {
      throw new HttpError(400, `input "images" has shape ${shapeText(shape)}; expected ${expected}: N images, 3 RGB channels, the model's ${C}x${C} crop (NCHW)`);
    }
    const count = dims[0];
    const length = count * 3 * C * C;
    let pixels: Float32Array;
    if (raw) {
      if (raw.length !== length * 4) throw new HttpError(400, `input "images" has shape ${shapeText(dims)} (${length} values) but ${raw.length} bytes of binary data (${length * 4} expected: little-endian float32)`);
      pixels = new Float32Array(length);
      new Uint8Array(pixels.buffer).set(raw);
    } else {
      if (!Array.isArray(input.data)) throw new HttpError(400, 'input "images" needs "data": an array of numbers (flat, row-major, or nested)');
      const data = (input.data as unknown[]).flat(Infinity as 1);
      if (data.length !== length) throw new HttpError(400, `input "images" has shape ${shapeText(dims)} (${length} values) but ${data.length} data elements`);
      pixels = new Float32Array(length);
      for (let i = 0; i < length; i++) {
        const v = data[i];
        if (typeof v !== 'number') throw new HttpError(400, `input "images" element ${i} is ${JSON.stringify(v)}, not a number`);
        pixels[i] = v;
      }
    }
    const bad = pixels.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) throw new HttpError(400, `input "images" element ${bad} is not a finite number`);
    if (count === 0) throw new HttpError(400, 'input "images" holds no image (N = 0)');
    parsed = { kind: 'tensor', count, pixels };
  } else if (input.name === 'image') {
    if (input.datatype !== 'BYTES') throw new HttpError(400, `input "image" has datatype ${JSON.stringify(input.datatype)}; expected BYTES (${usage})`);
    if (!dims || dims.length === 0 || dims.length > 2 || (dims.length === 2 && dims[1] !== 1)) {
      throw new HttpError(400, `input "image" has shape ${shapeText(shape)}; expected [N] (or [N, 1]): one image file per element`);
    }
    let images: (Buffer | string)[];
    if (raw) {
      images = [];
      for (let at = 0; at < raw.length;) {
        if (at + 4 > raw.length) throw new HttpError(400, 'input "image": binary data ends inside an element\'s 4-byte length');
        const n = raw.readUInt32LE(at);
        if (at + 4 + n > raw.length) throw new HttpError(400, `input "image": binary element ${images.length} of ${n} bytes runs past the data`);
        images.push(raw.subarray(at + 4, at + 4 + n));
        at += 4 + n;
      }
    } else {
      if (!Array.isArray(input.data)) throw new HttpError(400, 'input "image" needs "data": an array of base64 strings');
      const data = (input.data as unknown[]).flat(2);
      const bad = data.findIndex((d) => typeof d !== 'string');
      if (bad >= 0) throw new HttpError(400, `input "image" element ${bad} is not a string: BYTES elements are the image files, base64-encoded`);
      images = (data as string[]).map((s) => decodeBase64(s) ?? 'not base64: the image file must be base64-encoded');
    }
    if (images.length !== dims[0]) throw new HttpError(400, `input "image" has shape ${shapeText(dims)} but ${images.length} data elements`);
    if (images.length === 0) throw new HttpError(400, 'input "image" holds no image');
    parsed = { kind: 'files', images };
  } else {
    throw new HttpError(400, `unknown input ${JSON.stringify(input.name)}: ${usage}`);
  }
  if (json.parameters !== undefined && !isObject(json.parameters)) throw new HttpError(400, '"parameters" must be an object');
  const topK = topKParameter(json.parameters?.top_k, 'parameters.top_k');
  let outputs: OutputName[] = [...OUTPUT_NAMES];
  if (json.outputs !== undefined) {
    if (!Array.isArray(json.outputs)) throw new HttpError(400, '"outputs" must be an array of {"name"}');
    outputs = (json.outputs as unknown[]).map((o) => {
      const name = isObject(o) ? o.name : undefined;
      if (!OUTPUT_NAMES.includes(name as OutputName)) throw new HttpError(400, `unknown output ${JSON.stringify(name)}: the outputs are ${OUTPUT_NAMES.join(', ')}`);
      return name as OutputName;
    });
  }
  return { id: json.id as string | undefined, input: parsed, topK, outputs };
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
