// The object store on a local filesystem (file:///abs/dir or a plain path). Writes go to
// a temporary file in the target's directory, are fsynced and then renamed over the
// target, so a reader sees the old object, none, or the whole new one (rename(2) is
// atomic within a filesystem). Every path is checked to stay under the root, lexically
// and after resolving symbolic links.
import { randomBytes } from 'crypto';
import type { Dirent } from 'fs';
import * as fsp from 'fs/promises';
import * as path from 'path';
import type { Readable } from 'stream';
import { fileURLToPath, pathToFileURL } from 'url';

import { compareKeys, validateKey, validatePrefix } from './keys';
import { InvalidKeyError, ObjectNotFoundError, type ObjectInfo, type ObjectStore, type PutBody } from './types';

// Temporary files of unfinished writes start with this; list() skips them and keys may
// not use it, so a temporary file can never be mistaken for (or clobber) an object.
export const TMP_MARKER = '.~tmp-';
const NAME_MAX = 255; // bytes in one file name on Linux and macOS filesystems

function errno(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | undefined)?.code;
}

function isInside(root: string, p: string): boolean {
  const rel = path.relative(root, p);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

// Writes the whole buffer: FileHandle.write may write less than asked.
async function writeAll(fh: fsp.FileHandle, buf: Uint8Array): Promise<void> {
  for (let off = 0; off < buf.length;) off += (await fh.write(buf, off, buf.length - off)).bytesWritten;
}

// fsync the directory so the rename itself survives a crash.
async function syncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r');
  try { await fh.sync(); } finally { await fh.close(); }
}

export class LocalStore implements ObjectStore {
  readonly uri: string;
  readonly root: string;

  // location: 'file:///abs/dir' or a filesystem path (made absolute against the cwd).
  constructor(location: string) {
    this.root = path.resolve(location.startsWith('file:') ? fileURLToPath(location) : location);
    this.uri = pathToFileURL(this.root).href;
  }

  // The lexical path of a key, refused when it would leave the root.
  private pathOf(key: string): string {
    validateKey(key);
    if (key.split('/').some((s) => s.startsWith(TMP_MARKER))) {
      throw new InvalidKeyError(key, `segments starting with '${TMP_MARKER}' are reserved for temporary files`);
    }
    if (key.split('/').some((s) => Buffer.byteLength(s) > NAME_MAX)) {
      throw new InvalidKeyError(key, `a segment longer than ${NAME_MAX} bytes cannot be a local file name`);
    }
    const p = path.resolve(this.root, ...key.split('/'));
    if (!isInside(this.root, p) || p === this.root) throw new InvalidKeyError(key, `resolves outside ${this.uri}`);
    return p;
  }

  // Symbolic links inside the root could still point outside it: resolve and check.
  // Returns false when p does not exist.
  private async realInside(p: string, what: string): Promise<boolean> {
    let real: string, realRoot: string;
    try {
      [realRoot, real] = await Promise.all([fsp.realpath(this.root), fsp.realpath(p)]);
    } catch (e) {
      if (errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR') return false;
      throw e;
    }
    if (!isInside(realRoot, real)) throw new InvalidKeyError(what, `resolves outside ${this.uri} through a symbolic link`);
    return true;
  }

  // The checked path of an existing object, or undefined when there is none.
  private async existing(key: string): Promise<string | undefined> {
    const p = this.pathOf(key);
    return (await this.realInside(p, key)) ? p : undefined;
  }

  private async writeAtomic(key: string, fill: (fh: fsp.FileHandle) => Promise<void>): Promise<void> {
    const target = this.pathOf(key);
    const dir = path.dirname(target);
    try {
      await fsp.mkdir(dir, { recursive: true });
    } catch (e) {
      if (errno(e) === 'EEXIST' || errno(e) === 'ENOTDIR') {
        throw new Error(`cannot write '${key}' in ${this.uri}: a leading part of the key is an object, not a folder`);
      }
      throw e;
    }
    await this.realInside(dir, key);
    const tmp = path.join(dir, `${TMP_MARKER}${process.pid}-${randomBytes(8).toString('hex')}`);
    const fh = await fsp.open(tmp, 'wx', 0o644);
    let closed = false, renamed = false;
    try {
      await fill(fh);
      await fh.sync();
      await fh.close();
      closed = true;
      try {
        await fsp.rename(tmp, target);
      } catch (e) {
        if (errno(e) === 'EISDIR' || errno(e) === 'ENOTEMPTY' || errno(e) === 'EEXIST') {
          throw new Error(`cannot write '${key}' in ${this.uri}: keys below '${key}/' exist (a folder has that name)`);
        }
        throw e;
      }
      renamed = true;
    } finally {
      if (!closed) await fh.close().catch(() => undefined);
      if (!renamed) await fsp.rm(tmp, { force: true }).catch(() => undefined);
    }
    await syncDir(dir);
  }

  async put(key: string, body: PutBody): Promise<void> {
    const bufs = typeof body === 'string' ? [Buffer.from(body, 'utf8')] : body instanceof Uint8Array ? [body] : body;
    await this.writeAtomic(key, async (fh) => {
      for (const buf of bufs) await writeAll(fh, buf);
    });
  }

  async putStream(key: string, body: Readable, size?: number): Promise<void> {
    await this.writeAtomic(key, async (fh) => {
      let written = 0;
      for await (const chunk of body as AsyncIterable<Buffer | string>) {
        const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
        await writeAll(fh, buf);
        written += buf.length;
      }
      if (size !== undefined && written !== size) {
        throw new Error(`putStream '${key}' in ${this.uri}: expected ${size} bytes, the stream gave ${written}`);
      }
    });
  }

  async get(key: string): Promise<Buffer> {
    const p = await this.existing(key);
    if (p === undefined) throw new ObjectNotFoundError(this.uri, key);
    try {
      return await fsp.readFile(p);
    } catch (e) {
      if (['ENOENT', 'ENOTDIR', 'EISDIR'].includes(errno(e) ?? '')) throw new ObjectNotFoundError(this.uri, key);
      throw e;
    }
  }

  // A local file has no transfer to verify (getStream's options change nothing here).
  async getStream(key: string): Promise<Readable> {
    const p = await this.existing(key);
    if (p === undefined) throw new ObjectNotFoundError(this.uri, key);
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(p, 'r');
    } catch (e) {
      if (['ENOENT', 'ENOTDIR'].includes(errno(e) ?? '')) throw new ObjectNotFoundError(this.uri, key);
      throw e;
    }
    // open() succeeds on a folder; a folder is not an object. The open handle keeps
    // reading the same file even if a put renames a new one over it meanwhile.
    if (!(await fh.stat()).isFile()) {
      await fh.close();
      throw new ObjectNotFoundError(this.uri, key);
    }
    return fh.createReadStream({ highWaterMark: 1 << 20 });  // 1 MiB reads: 64 KiB ones cost more per byte
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    const p = await this.existing(key);
    if (p === undefined) return undefined;
    try {
      const st = await fsp.stat(p);
      return st.isFile() ? { key, size: st.size } : undefined;
    } catch (e) {
      if (errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR') return undefined;
      throw e;
    }
  }

  async delete(key: string): Promise<void> {
    const p = this.pathOf(key);
    // unlink does not follow a final symbolic link, but the folders above it could.
    if (!(await this.realInside(path.dirname(p), key))) return;
    try {
      if ((await fsp.lstat(p)).isDirectory()) return; // a folder of other keys, not an object
      await fsp.unlink(p);
    } catch (e) {
      if (errno(e) !== 'ENOENT' && errno(e) !== 'ENOTDIR') throw e;
    }
  }

  // Walks folders lazily. Each folder's entries are sorted by their key text, a folder
  // counting as 'name/', which yields keys in the same UTF-8 byte order as S3
  // ('a-b' < 'a/c' < 'a0' although the folder 'a' sorts before the file 'a-b').
  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    validatePrefix(prefix);
    const dirKey = prefix.slice(0, prefix.lastIndexOf('/') + 1); // '' or 'runs/r1/'
    if (dirKey.split('/').some((s) => s.startsWith(TMP_MARKER))) return;
    const dir = path.resolve(this.root, ...dirKey.split('/').filter((s) => s !== ''));
    if (!isInside(this.root, dir)) throw new InvalidKeyError(prefix, `resolves outside ${this.uri}`);
    if (!(await this.realInside(dir, prefix))) return;
    yield* this.walk(dir, dirKey, prefix);
  }

  private async *walk(dir: string, dirKey: string, prefix: string): AsyncGenerator<ObjectInfo> {
    let entries: Dirent[];
    try {
      entries = await fsp.readdir(dir, { withFileTypes: true });
    } catch (e) {
      if (errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR') return; // removed meanwhile
      throw e;
    }
    // Symbolic links and other special files are not objects (and links could escape).
    const items = entries
      .filter((e) => !e.name.startsWith(TMP_MARKER) && (e.isFile() || e.isDirectory()))
      .map((e) => ({ e, sortKey: dirKey + e.name + (e.isDirectory() ? '/' : '') }))
      .sort((a, b) => compareKeys(a.sortKey, b.sortKey));
    for (const { e, sortKey } of items) {
      if (e.isDirectory()) {
        if (sortKey.startsWith(prefix) || prefix.startsWith(sortKey)) yield* this.walk(path.join(dir, e.name), sortKey, prefix);
        continue;
      }
      if (!sortKey.startsWith(prefix)) continue;
      try { validateKey(sortKey); } catch { continue; } // a file name no key could have
      try {
        yield { key: sortKey, size: (await fsp.stat(path.join(dir, e.name))).size };
      } catch (err) {
        if (errno(err) !== 'ENOENT') throw err; // deleted while listing
      }
    }
  }
}
