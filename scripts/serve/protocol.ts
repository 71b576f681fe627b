// The HTTP side of alexnet serve: JSON answers and errors, request bodies with a size
// limit, secrets kept out of messages, and the KServe v2 / Open Inference Protocol mapping
// of an inference request and its answer.
//
// KServe infer: one input, "image", datatype BYTES, shape [N] (or [N, 1]), data the N image
// files base64-encoded; parameters.top_k (default options.topK). The answer has five
// outputs (or those the request's "outputs" names), k = min(top_k, classes):
//   top            BYTES [N]     per image the JSON {"top": [{"class","name","probability"}...]}
//                                or {"error": reason}: what `alexnet classify` prints
//   classes        BYTES [N, k]  class ids (dataset folder names / wnids), most probable first
//   names          BYTES [N, k]  their human-readable names
//   probabilities  FP32  [N, k]  their probabilities (crop-averaged softmax)
//   error          BYTES [N]     "" for a classified image, else why it could not be read
// An unreadable image does not fail the others: its rows of classes/names are "" and of
// probabilities 0, and "top"/"error" carry the reason. When no image of the request can be
// read the request fails: 400 {"error": "image 0: reason; ..."}.
import type * as http from 'http';

import type { ClassPrediction, ImagePrediction } from '../../activities/classify';

export const OUTPUT_NAMES = ['top', 'classes', 'names', 'probabilities', 'error'] as const;
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

export function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (declared > limit) return Promise.reject(new HttpError(413, `request body of ${declared} bytes is over the limit of ${limit}`, { Connection: 'close' }));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        reject(new HttpError(413, `request body is over the limit of ${limit} bytes`, { Connection: 'close' }));
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

// A parsed KServe v2 inference request: the images (base64-decoded, or why not) and options.
export interface InferRequest {
  id?: string;
  images: (Buffer | string)[];   // the bytes, or the reason they are not an image file
  topK?: number;
  outputs: OutputName[];
}

export function parseInferRequest(body: Buffer): InferRequest {
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch (e) {
    throw new HttpError(400, `malformed JSON: ${(e as Error).message}`);
  }
  if (!isObject(json)) throw new HttpError(400, 'the request must be a JSON object {"inputs": [...]}');
  if (json.id !== undefined && typeof json.id !== 'string') throw new HttpError(400, '"id" must be a string');
  const usage = 'this model takes one input, "image": datatype BYTES, shape [N], data the N image files base64-encoded';
  if (!Array.isArray(json.inputs) || json.inputs.length === 0) throw new HttpError(400, `"inputs" must be a non-empty array: ${usage}`);
  if (json.inputs.length !== 1) throw new HttpError(400, `${json.inputs.length} inputs given: ${usage}`);
  const input: unknown = json.inputs[0];
  if (!isObject(input)) throw new HttpError(400, `an input must be an object: ${usage}`);
  if (input.name !== 'image') throw new HttpError(400, `unknown input ${JSON.stringify(input.name)}: ${usage}`);
  if (input.datatype !== 'BYTES') throw new HttpError(400, `input "image" has datatype ${JSON.stringify(input.datatype)}, not BYTES: ${usage}`);
  const shape = input.shape;
  if (!Array.isArray(shape) || shape.length === 0 || !shape.every((d) => Number.isInteger(d) && (d as number) >= 0)) {
    throw new HttpError(400, `input "image" needs a shape of non-negative integers, [N]: ${usage}`);
  }
  const dims = shape as number[];
  if (dims.length > 2 || (dims.length === 2 && dims[1] !== 1)) throw new HttpError(400, `input "image" has shape ${JSON.stringify(dims)}: it must be [N] (or [N, 1]), one image file per element`);
  if (!Array.isArray(input.data)) throw new HttpError(400, 'input "image" needs "data": an array of base64 strings');
  const data = (input.data as unknown[]).flat(2);
  if (data.length !== dims[0]) throw new HttpError(400, `input "image" has shape ${JSON.stringify(dims)} but ${data.length} data elements`);
  if (data.length === 0) throw new HttpError(400, 'input "image" holds no image');
  const bad = data.findIndex((d) => typeof d !== 'string');
  if (bad >= 0) throw new HttpError(400, `input "image" element ${bad} is not a string: BYTES elements are the image files, base64-encoded`);
  const images = (data as string[]).map((s) => decodeBase64(s) ?? 'not base64: the image file must be base64-encoded');
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
  return { id: json.id as string | undefined, images, topK, outputs };
}

export function inferOutputs(answers: ImagePrediction[], k: number, wanted: OutputName[]) {
  const rows = (f: (p: ClassPrediction) => string | number, pad: string | number) => answers.flatMap((a) => {
    const row: (string | number)[] = 'top' in a ? a.top.map(f) : [];
    while (row.length < k) row.push(pad);
    return row;
  });
  const n = answers.length;
  const all: Record<OutputName, () => { datatype: string; shape: number[]; data: (string | number)[] }> = {
    top: () => ({ datatype: 'BYTES', shape: [n], data: answers.map((a) => JSON.stringify('top' in a ? { top: a.top } : { error: a.error })) }),
    classes: () => ({ datatype: 'BYTES', shape: [n, k], data: rows((p) => p.class, '') }),
    names: () => ({ datatype: 'BYTES', shape: [n, k], data: rows((p) => p.name, '') }),
    probabilities: () => ({ datatype: 'FP32', shape: [n, k], data: rows((p) => p.probability, 0) }),
    error: () => ({ datatype: 'BYTES', shape: [n], data: answers.map((a) => ('error' in a ? a.error : '')) }),
  };
  return wanted.map((name) => ({ name, ...all[name]() }));
}
