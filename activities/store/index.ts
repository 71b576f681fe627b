// Opens the object store a URI names: s3://bucket[/prefix] on S3 (or MinIO), file:///dir
// or a plain filesystem path on the local disk. Everything else is refused with the
// accepted forms, so a typo never silently becomes a local folder named 'http:'.
import * as path from 'path';
import { fileURLToPath } from 'url';

import { describe } from '../../common/validate';
import { StateError } from '../../native/safetensors';
import { LocalStore } from './local';
import { S3Store, type S3StoreOptions } from './s3';
import { InvalidStoreUriError, type ObjectStore } from './types';

export * from './types';
export { joinKey, validateKey, validatePrefix, compareKeys } from './keys';
export { LocalStore } from './local';
export { S3Store, parseS3Uri, type S3StoreOptions } from './s3';

// endpoint, forcePathStyle and region, plus S3 tuning (retries, list page and part sizes).
export type OpenStoreOptions = S3StoreOptions;

export function openStore(uri: string, options: OpenStoreOptions = {}): ObjectStore {
  if (typeof uri !== 'string' || uri.trim() === '') throw new InvalidStoreUriError(String(uri), 'empty');
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(uri)?.[1]?.toLowerCase();
  if (scheme === 's3') return new S3Store(uri, options);
  if (scheme === 'file') {
    if (!uri.startsWith('file://')) throw new InvalidStoreUriError(uri, "a file URI starts with 'file:///'");
    let dir: string;
    try {
      dir = fileURLToPath(uri);
    } catch (e) {
      throw new InvalidStoreUriError(uri, `not a local file URL (${(e as Error).message})`);
    }
    return new LocalStore(dir);
  }
  // 'c:' style drive letters do not occur on the POSIX systems we run on; any other
  // 'scheme://' is a URL we do not serve.
  if (scheme !== undefined && uri.slice(scheme.length + 1).startsWith('//')) {
    throw new InvalidStoreUriError(uri, `unsupported scheme '${scheme}:'`);
  }
  return new LocalStore(path.resolve(uri));
}

// A JSON value from the store (manifests, reports, pointers). Bytes that do not parse are
// refused naming the key and the store, coded CORRUPT_STATE like a corrupt checkpoint
// (StateError), not as a bare SyntaxError; `remedy` says what to do about it (a reader
// that knows the file says how it is rewritten). What the value holds, the caller checks.
export async function getJson<T>(store: ObjectStore, key: string, remedy = 'Restore it, or remove it if what wrote it can write it again'): Promise<T> {
  const text = (await store.get(key)).toString('utf8');
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new StateError(`${key} in ${store.uri} is corrupt: it is not JSON (${(e as Error).message}). ${remedy}`);
  }
}

// A small JSON state file that its reader checks field by field (latest.json, serving.json,
// run.json): undefined when there is none; else the parsed object and how to refuse it,
// a StateError naming the file and ending with `remedy`. A value that is no object is
// refused here, as `what` ("a pointer object").
export async function readStateObject(store: ObjectStore, key: string, what: string, remedy: string): Promise<{ value: Record<string, unknown>; corrupt: (why: string) => StateError } | undefined> {
  if (!(await store.head(key))) return undefined;
  const value = await getJson<unknown>(store, key, remedy);
  const corrupt = (why: string) => new StateError(`${key} in ${store.uri} is corrupt: ${why}. ${remedy}`);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw corrupt(`it holds ${describe(value)}, not ${what}`);
  return { value: value as Record<string, unknown>, corrupt };
}

