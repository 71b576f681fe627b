// Object key rules shared by every store. Keys are checked before any I/O so that the
// same key behaves the same on S3 and on disk, and so that no key can name a path
// outside a local store's root ('..', absolute paths, backslashes read as separators).
import { InvalidKeyError } from './types';

export const MAX_KEY_BYTES = 1024; // S3's limit on the full key, checked here on the relative key

// Characters never allowed: backslash (a separator on Windows, and ambiguous in URLs)
// and NUL (truncates paths in the C library).
function checkChars(key: string): void {
  if (key.includes('\\')) throw new InvalidKeyError(key, 'backslashes are not allowed');
  if (key.includes('\0')) throw new InvalidKeyError(key, 'NUL characters are not allowed');
  if (Buffer.byteLength(key, 'utf8') > MAX_KEY_BYTES) throw new InvalidKeyError(key, `longer than ${MAX_KEY_BYTES} bytes`);
}

function checkSegment(key: string, segment: string): void {
  if (segment === '') throw new InvalidKeyError(key, "empty segments ('//', a leading or trailing '/') are not allowed");
  if (segment === '.' || segment === '..') throw new InvalidKeyError(key, `'${segment}' segments are not allowed`);
}

// Returns the key unchanged when valid; throws InvalidKeyError otherwise.
export function validateKey(key: string): string {
  if (typeof key !== 'string') throw new InvalidKeyError(String(key), 'a key must be a string');
  if (key === '') throw new InvalidKeyError(key, 'a key must not be empty');
  checkChars(key);
  if (key.startsWith('/')) throw new InvalidKeyError(key, "a key is relative and must not start with '/'");
  for (const segment of key.split('/')) checkSegment(key, segment);
  return key;
}

// A list prefix is any leading part of a valid key: '' (everything), 'runs/' or 'runs/ab'.
// Its last segment may be partial (so '' or '.' are fine there); all others must be valid.
export function validatePrefix(prefix: string): string {
  if (typeof prefix !== 'string') throw new InvalidKeyError(String(prefix), 'a prefix must be a string');
  if (prefix === '') return prefix;
  checkChars(prefix);
  if (prefix.startsWith('/')) throw new InvalidKeyError(prefix, "a prefix is relative and must not start with '/'");
  const segments = prefix.split('/');
  for (const segment of segments.slice(0, -1)) checkSegment(prefix, segment);
  return prefix;
}

// Joins parts with '/', trimming slashes at each part's ends and dropping empty parts,
// then validates the result: joinKey('runs/', 'r1', 'ckpt.safetensors') === 'runs/r1/ckpt.safetensors'.
export function joinKey(...parts: string[]): string {
  const trimmed = parts.map((p) => p.replace(/^\/+|\/+$/g, '')).filter((p) => p !== '');
  return validateKey(trimmed.join('/'));
}

// UTF-8 byte order: the order S3 lists keys in (JS string comparison uses UTF-16 code
// units, which differs for characters beyond the Basic Multilingual Plane).
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}
