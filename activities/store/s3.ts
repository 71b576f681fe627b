// The object store on S3 or an S3-compatible server such as MinIO (s3://bucket/prefix).
// Credentials come only from the SDK's default chain (environment, profiles, SSO, web
// identity, instance metadata) and never reach uri, logs or error messages. Uploads
// carry CRC32 checksums that the server verifies (whole-object ones for multipart
// uploads too), and the SDK checks them again on download (unless a caller that checks
// the bytes itself asks getStream not to).
// put is one PutObject and putStream one (multipart) Upload: S3 makes either visible
// only when complete, so both are atomic; a failed multipart upload is aborted.
import {
  DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client, type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { Readable } from 'stream';
import { setTimeout as sleep } from 'timers/promises';
import * as zlib from 'zlib';

import { MAX_KEY_BYTES, validateKey, validatePrefix } from './keys';
import {
  InvalidKeyError, InvalidStoreUriError, ObjectNotFoundError, StoreConfigurationError, type GetStreamOptions, type ObjectInfo, type ObjectStore, type PutBody,
} from './types';

export interface S3StoreOptions {
  endpoint?: string;        // default: AWS_ENDPOINT_URL_S3, then AWS_ENDPOINT_URL, then AWS itself
  forcePathStyle?: boolean; // default: ALEXNET_S3_FORCE_PATH_STYLE=1/0, else on when an endpoint is set
  region?: string;          // default: AWS_REGION, then AWS_DEFAULT_REGION, then us-east-1
  maxAttempts?: number;     // default: AWS_MAX_ATTEMPTS, then 5 (exponential backoff with jitter)
  retryMode?: 'standard' | 'adaptive'; // default: AWS_RETRY_MODE, then standard; adaptive also rate-limits the client
  listPageSize?: number;    // MaxKeys per ListObjectsV2 page; servers cap it at 1000
  partSize?: number;        // multipart part size of putStream, at least 5 MiB
  connectTimeoutMs?: number; // default: ALEXNET_S3_CONNECT_TIMEOUT_MS, then 10 s: a connection not made by then fails (and is retried)
  readTimeoutMs?: number;    // default: ALEXNET_S3_READ_TIMEOUT_MS, then 60 s: a request or body silent that long fails (and is retried)
}

// A store request whose connection or whose answer never comes must fail, so that the
// SDK retries it and, after maxAttempts, the caller hears why (a serve whose first model
// load hangs, a worker whose checkpoint read stalls). Read is an idle limit, not one on the
// whole transfer: a 488 MB checkpoint over a slow link is slow, not stuck.
export const DEFAULT_S3_CONNECT_TIMEOUT_MS = 10_000;
export const DEFAULT_S3_READ_TIMEOUT_MS = 60_000;

function timeoutSetting(given: number | undefined, variable: string, fallback: number): number {
  if (given !== undefined) return given;
  const value = process.env[variable];
  if (value === undefined || value.trim() === '') return fallback;
  const ms = Number(value);
  if (!Number.isInteger(ms) || ms < 1) throw new Error(`${variable} must be a whole number of milliseconds >= 1, got '${value}'`);
  return ms;
}

const MiB = 1 << 20;

// s3://bucket or s3://bucket/some/prefix (a trailing '/' is ignored).
export function parseS3Uri(uri: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([^/]*)(?:\/(.*))?$/.exec(uri);
  if (!m) throw new InvalidStoreUriError(uri, "an S3 URI starts with 's3://'");
  const [, bucket, rest = ''] = m;
  if (bucket === '') throw new InvalidStoreUriError(uri, 'the bucket name is missing');
  // Bucket naming rules (3-63 characters; legacy buckets may also have capitals or '_').
  if (!/^[a-zA-Z0-9][a-zA-Z0-9._-]{1,61}[a-zA-Z0-9]$/.test(bucket)) {
    throw new InvalidStoreUriError(uri, 'not a valid bucket name');
  }
  const prefix = rest.replace(/\/+$/, '');
  if (prefix !== '') {
    try { validateKey(prefix); } catch (e) { throw new InvalidStoreUriError(uri, `bad prefix: ${(e as Error).message}`); }
  }
  return { bucket, prefix };
}

function envFlag(value: string | undefined): boolean | undefined {
  if (value === undefined || value === '') return undefined;
  return ['1', 'true', 'yes', 'on'].includes(value.toLowerCase());
}

interface SdkError { name?: string; message?: string; code?: string; $retryable?: unknown; $metadata?: { httpStatusCode?: number } }

// zlib.crc32 (Node 20.15+): the CRC32 that S3 checks, computed over several buffers.
const crc32 = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;

function crc32Base64(bufs: readonly Uint8Array[]): string {
  let c = 0;
  for (const b of bufs) c = crc32!(b, c);
  const out = Buffer.alloc(4);
  out.writeUInt32BE(c >>> 0);
  return out.toString('base64');
}

// Errors that another attempt may not meet: throttling, server errors, timeouts and
// dropped connections (what the SDK's own standard retry strategy retries).
function transient(err: unknown): boolean {
  const e = (err ?? {}) as SdkError;
  const status = e.$metadata?.httpStatusCode ?? 0;
  return !!e.$retryable || status >= 500 || status === 429 ||
    ['TimeoutError', 'RequestTimeout', 'RequestTimeoutException', 'SlowDown', 'Throttling', 'ThrottlingException', 'InternalError', 'ServiceUnavailable'].includes(e.name ?? '') ||
    ['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN'].includes(e.code ?? '');
}

export class S3Store implements ObjectStore {
  readonly uri: string;
  readonly bucket: string;
  readonly prefix: string;           // '' or 'some/prefix'
  readonly client: S3Client;
  private readonly keyPrefix: string; // '' or 'some/prefix/'
  private readonly where: string;     // for messages: ' at http://host:port' or ''
  private readonly listPageSize?: number;
  private readonly partSize: number;
  private readonly maxAttempts: number;
  private readonly clientConfig: S3ClientConfig;
  private unverifiedClient?: S3Client;  // for getStream(key, {verify: false})

  constructor(uri: string, options: S3StoreOptions = {}) {
    const { bucket, prefix } = parseS3Uri(uri);
    this.bucket = bucket;
    this.prefix = prefix;
    this.keyPrefix = prefix === '' ? '' : `${prefix}/`;
    this.uri = `s3://${bucket}${prefix === '' ? '' : `/${prefix}`}`;
    this.listPageSize = options.listPageSize;
    this.partSize = Math.max(5 * MiB, options.partSize ?? 8 * MiB);

    const env = process.env;
    const endpoint = options.endpoint ?? (env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined);
    // Custom endpoints (MinIO, Ceph, ...) rarely have wildcard DNS for virtual-host style.
    const forcePathStyle = options.forcePathStyle ?? envFlag(env.ALEXNET_S3_FORCE_PATH_STYLE) ?? endpoint !== undefined;
    const maxAttempts = options.maxAttempts ?? (Number(env.AWS_MAX_ATTEMPTS) || 5);
    this.where = endpoint === undefined ? '' : ` at ${endpoint.replace(/\/\/[^/]*@/, '//***@')}`;
    this.maxAttempts = maxAttempts;
    this.clientConfig = {
      region: options.region ?? (env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1'),
      endpoint,
      forcePathStyle,
      maxAttempts,
      retryMode: options.retryMode ?? (env.AWS_RETRY_MODE === 'adaptive' ? 'adaptive' : 'standard'),
      requestChecksumCalculation: 'WHEN_SUPPORTED',
      responseChecksumValidation: 'WHEN_SUPPORTED',
      // The SDK's Node handler: connectionTimeout for the TCP/TLS connect, socketTimeout for
      // a socket idle that long (no answer, a stalled body); both fail with TimeoutError,
      // which the SDK's retry strategy retries.
      requestHandler: {
        connectionTimeout: timeoutSetting(options.connectTimeoutMs, 'ALEXNET_S3_CONNECT_TIMEOUT_MS', DEFAULT_S3_CONNECT_TIMEOUT_MS),
        socketTimeout: timeoutSetting(options.readTimeoutMs, 'ALEXNET_S3_READ_TIMEOUT_MS', DEFAULT_S3_READ_TIMEOUT_MS),
      },
    };
    this.client = new S3Client(this.clientConfig);
  }

  // S3's 1024-byte limit applies to the whole key, store prefix included.
  private fullKey(key: string): string {
    const full = this.keyPrefix + validateKey(key);
    if (Buffer.byteLength(full, 'utf8') > MAX_KEY_BYTES) {
      throw new InvalidKeyError(key, `with the store prefix '${this.keyPrefix}' it is longer than ${MAX_KEY_BYTES} bytes`);
    }
    return full;
  }

  // Turns SDK errors into messages that name the bucket and say what to do. SDK errors
  // never carry the secret key, but we build our own messages anyway so they stay short.
  private fail(op: string, key: string | undefined, err: unknown): Error {
    const e = (err ?? {}) as SdkError;
    const name = e.name ?? 'Error';
    const status = e.$metadata?.httpStatusCode;
    const what = `${op}${key === undefined ? '' : ` '${key}'`} in ${this.uri}${this.where}`;
    let msg: string;
    let permanent = true;  // unless the last branch: another attempt meets the same answer
    if (name === 'CredentialsProviderError' || /could not load credentials/i.test(e.message ?? '')) {
      msg = `${what}: no AWS credentials found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY ` +
        '(and AWS_SESSION_TOKEN for temporary credentials), or AWS_PROFILE naming a profile in ~/.aws/credentials';
    } else if (name === 'InvalidAccessKeyId' || name === 'SignatureDoesNotMatch') {
      msg = `${what}: the server rejected the credentials (${name}); check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY`;
    } else if (name === 'TimeoutError') {
      msg = `${what}: the store did not answer in time (${e.message ?? 'timed out'}); ` +
        'check that the endpoint is up and reachable, or raise ALEXNET_S3_CONNECT_TIMEOUT_MS / ALEXNET_S3_READ_TIMEOUT_MS';
      permanent = false;
    } else if (name === 'NoSuchBucket') {
      msg = `${what}: bucket '${this.bucket}' does not exist${this.where}`;
    } else if (name === 'AccessDenied' || name === 'Forbidden' || status === 403) {
      msg = `${what}: access denied to bucket '${this.bucket}'; the credentials lack permission for ${op}`;
    } else {
      msg = `${what} failed: ${name}${e.message ? `: ${e.message}` : ''}`;
      permanent = false;
    }
    return permanent ? new StoreConfigurationError(msg, name, { cause: err }) : Object.assign(new Error(msg, { cause: err }), { code: name });
  }

  private isNotFound(err: unknown): boolean {
    const e = err as SdkError;
    return e?.name === 'NoSuchKey' || e?.name === 'NotFound' || (e?.$metadata?.httpStatusCode === 404 && e?.name !== 'NoSuchBucket');
  }

  async put(key: string, body: PutBody): Promise<void> {
    const Key = this.fullKey(key);
    if (typeof body !== 'string' && !(body instanceof Uint8Array)) {
      if (crc32 === undefined) body = Buffer.concat(body);  // no zlib.crc32: let the SDK checksum one buffer
      else return this.putBuffers(key, Key, body);
    }
    // An explicit length: the SDK sends none for an empty body, which S3 needs (and warns about).
    const ContentLength = typeof body === 'string' ? Buffer.byteLength(body, 'utf8') : body.byteLength;
    try {
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key, Body: body, ContentLength, ChecksumAlgorithm: 'CRC32' }));
    } catch (err) {
      throw this.fail('put', key, err);
    }
  }

  // Several buffers as one PutObject whose body streams them in turn: no copy into one
  // buffer. The CRC32 goes with the request (the server checks it). A streamed body is
  // sent unsigned (the SDK signs a buffer's sha256, which the server then recomputes:
  // two more passes over the data that the CRC32 makes redundant). The SDK never
  // retries a streamed body, so this does, with a fresh stream over the same buffers.
  private async putBuffers(key: string, Key: string, bufs: readonly Uint8Array[]): Promise<void> {
    const ContentLength = bufs.reduce((n, b) => n + b.byteLength, 0);
    const ChecksumCRC32 = crc32Base64(bufs);
    for (let attempt = 1; ; attempt++) {
      try {
        await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key, Body: Readable.from(bufs), ContentLength, ChecksumCRC32 }));
        return;
      } catch (err) {
        if (attempt >= this.maxAttempts || !transient(err)) throw this.fail('put', key, err);
        await sleep(Math.random() * Math.min(20_000, 100 * 2 ** attempt));  // full jitter, as the SDK's standard mode
      }
    }
  }

  async putStream(key: string, body: Readable, size?: number): Promise<void> {
    const Key = this.fullKey(key);
    // A short or long stream must fail the upload (and so abort it), not store a wrong object.
    let sizeError: Error | undefined;
    const uri = this.uri;
    async function* checked(): AsyncGenerator<Buffer> {
      let n = 0;
      for await (const chunk of body as AsyncIterable<Buffer | string>) {
        const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
        n += buf.length;
        yield buf;
      }
      if (size !== undefined && n !== size) {
        throw (sizeError = new Error(`putStream '${key}' in ${uri}: expected ${size} bytes, the stream gave ${n}`));
      }
    }
    const upload = new Upload({
      client: this.client,
      // FULL_OBJECT: the server keeps one CRC32 of the whole object (combined from the
      // parts' CRC32s), which the SDK then checks on download; the default COMPOSITE
      // checksum ('...-N') is a checksum of checksums that downloads cannot verify.
      params: { Bucket: this.bucket, Key, Body: Readable.from(checked()), ChecksumAlgorithm: 'CRC32', ChecksumType: 'FULL_OBJECT' },
      partSize: this.partSize,
      queueSize: 4,             // at most 4 parts (32 MiB by default) buffered at once
      leavePartsOnError: false, // abort the multipart upload on failure: no orphaned parts
    });
    try {
      await upload.done();
    } catch (err) {
      if (err === sizeError) throw err;
      throw this.fail('putStream', key, err);
    }
  }

  private async open(key: string, verify: boolean): Promise<{ body: Readable; length?: number }> {
    const Key = this.fullKey(key);
    try {
      // With verify false, no ChecksumMode and a client that adds none (the default one
      // sets it on every GetObject): the server sends no CRC32 and the SDK checks none.
      const client = verify ? this.client : (this.unverifiedClient ??= new S3Client({ ...this.clientConfig, responseChecksumValidation: 'WHEN_REQUIRED' }));
      const out = await client.send(new GetObjectCommand({ Bucket: this.bucket, Key, ...(verify ? { ChecksumMode: 'ENABLED' } : {}) }));
      if (!(out.Body instanceof Readable)) throw new Error('the response body is not a Node.js stream');
      return { body: out.Body, length: out.ContentLength };
    } catch (err) {
      if (this.isNotFound(err)) throw new ObjectNotFoundError(this.uri, key);
      throw this.fail('get', key, err);
    }
  }

  async getStream(key: string, options: GetStreamOptions = {}): Promise<Readable> {
    return (await this.open(key, options.verify ?? true)).body;
  }

  // Into one buffer of the object's length as the bytes arrive (no list of chunks to
  // concatenate); a body shorter or longer than that length fails naming the key.
  async get(key: string): Promise<Buffer> {
    const { body, length } = await this.open(key, true);
    const chunks: Buffer[] = [];
    const out = length === undefined ? undefined : Buffer.allocUnsafe(length);
    let n = 0;
    try {
      for await (const chunk of body as AsyncIterable<Buffer>) {
        if (!out) chunks.push(chunk);
        else if (n + chunk.length <= out.length) out.set(chunk, n);
        n += chunk.length;
      }
    } catch (err) {
      throw this.fail('get', key, err); // e.g. a checksum mismatch or a dropped connection
    }
    if (!out) return Buffer.concat(chunks);
    if (n !== out.length) {
      throw new Error(`get '${key}' in ${this.uri}${this.where}: the object has ${out.length} bytes but the transfer gave ${n}${n < out.length ? ' (cut short)' : ''}`);
    }
    return out;
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    const Key = this.fullKey(key);
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key }));
      return { key, size: out.ContentLength ?? 0 };
    } catch (err) {
      if (this.isNotFound(err)) return undefined;
      throw this.fail('head', key, err);
    }
  }

  async delete(key: string): Promise<void> {
    const Key = this.fullKey(key);
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key }));
    } catch (err) {
      if (this.isNotFound(err)) return;
      throw this.fail('delete', key, err);
    }
  }

  // ListObjectsV2 returns keys in UTF-8 byte order, at most 1000 a page.
  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    validatePrefix(prefix);
    let token: string | undefined;
    do {
      let out;
      try {
        out = await this.client.send(new ListObjectsV2Command({
          Bucket: this.bucket, Prefix: this.keyPrefix + prefix, ContinuationToken: token, MaxKeys: this.listPageSize,
        }));
      } catch (err) {
        throw this.fail('list', prefix, err);
      }
      for (const o of out.Contents ?? []) {
        if (o.Key === undefined) continue;
        const key = o.Key.slice(this.keyPrefix.length);
        // Objects written by other tools may have keys ours cannot name ('dir/' markers, '//').
        try { validateKey(key); } catch { continue; }
        yield { key, size: o.Size ?? 0 };
      }
      if (out.IsTruncated && !out.NextContinuationToken) {
        throw new Error(`list '${prefix}' in ${this.uri}${this.where}: the server said the listing is truncated but gave no continuation token`);
      }
      token = out.IsTruncated ? out.NextContinuationToken : undefined;
    } while (token !== undefined);
  }
}
