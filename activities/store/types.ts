// The object store interface: one API over S3 (s3://bucket/prefix) and the local
// filesystem (file:///dir or a plain path). Keys are relative, '/'-separated paths below
// the store's root (no leading '/', no '.' or '..' segments, no empty segments).
import type { Readable } from 'stream';

export interface ObjectInfo {
  key: string;   // relative to the store root
  size: number;  // bytes
}

export interface ObjectStore {
  // The canonical root URI ("s3://bucket/prefix" or "file:///abs/dir"); never contains secrets.
  readonly uri: string;
  // Atomic: a reader sees the old object, or none, or the whole new one; never a part.
  // A list of buffers is stored as their concatenation, without copying them into one
  // (so they must not change until put settles).
  put(key: string, body: PutBody): Promise<void>;
  // Atomic like put; for large objects (multipart on S3). size is optional.
  putStream(key: string, body: Readable, size?: number): Promise<void>;
  // Throws ObjectNotFoundError (with the key and the store URI) when absent.
  get(key: string): Promise<Buffer>;
  getStream(key: string, options?: GetStreamOptions): Promise<Readable>;
  // undefined when absent.
  head(key: string): Promise<ObjectInfo | undefined>;
  // Every object whose key starts with prefix ('' for all), in ascending key order,
  // paging through any number of objects.
  list(prefix: string): AsyncIterable<ObjectInfo>;
  // No error when absent.
  delete(key: string): Promise<void>;
}

export type PutBody = Buffer | Uint8Array | string | readonly Uint8Array[];

export interface GetStreamOptions {
  // false: skip the store's own check of the transfer (S3's CRC32 of the object), for a
  // caller that verifies the bytes itself end to end (a checkpoint's sha256). Default true.
  verify?: boolean;
}

// A store error that another attempt will meet too (a bucket that does not exist, missing
// or rejected credentials, denied access): the configuration has to change. Callers that
// retry store errors on their own (alexnet serve's model load) stop at these.
export class StoreConfigurationError extends Error {
  constructor(message: string, readonly code: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'StoreConfigurationError';
  }
}

export class ObjectNotFoundError extends Error {
  constructor(readonly storeUri: string, readonly key: string) {
    super(`no object '${key}' in ${storeUri}`);
    this.name = 'ObjectNotFoundError';
  }
}

export class InvalidKeyError extends Error {
  constructor(readonly key: string, reason: string) {
    super(`invalid object key ${JSON.stringify(key)}: ${reason}`);
    this.name = 'InvalidKeyError';
  }
}

// A store URI that names no store we can open. The message shows the URI with any
// 'user:password@' part blanked out, and the forms that are accepted.
export class InvalidStoreUriError extends Error {
  readonly uri: string;
  constructor(uri: string, reason: string) {
    const shown = uri.replace(/^([a-zA-Z][a-zA-Z0-9+.-]*:\/\/)[^/]*@/, '$1***@');
    super(`invalid store URI ${JSON.stringify(shown)}: ${reason}; ` +
      'accepted forms: s3://bucket or s3://bucket/prefix, file:///absolute/dir, or a filesystem path');
    this.name = 'InvalidStoreUriError';
    this.uri = shown;
  }
}
