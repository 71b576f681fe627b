// One source image -> the paper's input: decode (any format sharp reads), honour EXIF
// orientation, convert greyscale/CMYK/alpha to sRGB RGB, resize the shorter side to S
// and crop the central SxS patch. Bad inputs become an ImageSkip with a reason, never a
// crash; inputs that are fine but unusual come back with a note saying what was converted.
import * as os from 'os';

import sharp from 'sharp';
import type { ResizeKernel } from '../common/contract';

// Decompression-bomb guard: refuse images with more pixels than this before decoding.
export const DEFAULT_MAX_PIXELS = 100_000_000;

export class ImageSkip extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'ImageSkip';
  }
}

export interface DecodedImage {
  pixels: Buffer;   // (S, S, 3) uint8
  note?: string;    // what was converted, if anything
}

// Parallelism comes from images, not from inside one: an image of ImageNet size is too
// small to split over threads (each hand-off costs more than it saves), so every image runs
// on one libvips thread (sharp's default is one per core on some platforms), and the
// caller keeps DECODE_CONCURRENCY images in flight. The operation cache is off: every
// image is new, and caching only costs memory.
sharp.concurrency(1);
sharp.cache(false);

// Images a preprocessing shard decodes at once: enough to keep every decode thread busy
// while others wait on the store.
export const DECODE_CONCURRENCY = 8;

// sharp runs each image on a thread of libuv's pool, which has 4 threads unless
// UV_THREADPOOL_SIZE says otherwise: a worker on a 16-core machine would preprocess on 4.
// That thread waits while the image's libvips thread works, and each hand-off between the
// two leaves a core idle for a moment, so the pool has two threads per core (at least
// libuv's 4). The worker sizes it once, before anything uses the pool.
export function decodeThreads(): number {
  return Math.max(4, 2 * os.availableParallelism());
}

export function sizeDecodeThreadpool(): void {
  process.env.UV_THREADPOOL_SIZE ??= String(decodeThreads());
}

// What the first bytes say the file is, for messages about files that do not decode.
function sniff(data: Buffer): string | undefined {
  if (data.length >= 3 && data[0] === 0xff && data[1] === 0xd8 && data[2] === 0xff) return 'JPEG';
  if (data.subarray(0, 4).toString('latin1') === '\x89PNG') return 'PNG';
  if (data.subarray(0, 3).toString('latin1') === 'GIF') return 'GIF';
  return undefined;
}

export interface JpegHeader {
  width: number;
  height: number;
  components: number;   // 1 greyscale, 3 YCbCr/RGB, 4 CMYK/YCCK
  orientation: number;  // EXIF orientation, 1 when absent
}

// Reads what preprocessing needs from a JPEG's markers (size, components, EXIF
// orientation) without decoding: a second libvips header pass per image costs about 10%
// of the preprocessing time. undefined when the markers do not parse (sharp then judges).
export function jpegHeader(d: Buffer): JpegHeader | undefined {
  if (d.length < 4 || d[0] !== 0xff || d[1] !== 0xd8) return undefined;
  let orientation = 1;
  let p = 2;
  while (p + 4 <= d.length) {
    if (d[p] !== 0xff) return undefined;
    const marker = d[p + 1];
    if (marker === 0xff) { p++; continue; }  // fill byte
    const len = d.readUInt16BE(p + 2);
    const seg = p + 4;
    if (seg + len - 2 > d.length) return undefined;
    if (marker === 0xe1 && len >= 16 && d.toString('latin1', seg, seg + 6) === 'Exif\0\0') {
      const t = seg + 6;
      const le = d.toString('latin1', t, t + 2) === 'II';
      const u16 = (o: number) => (le ? d.readUInt16LE(o) : d.readUInt16BE(o));
      const u32 = (o: number) => (le ? d.readUInt32LE(o) : d.readUInt32BE(o));
      const ifd = t + u32(t + 4);
      if (ifd + 2 <= seg + len - 2) {
        const n = u16(ifd);
        for (let i = 0; i < n && ifd + 2 + 12 * (i + 1) <= seg + len - 2; i++) {
          const e = ifd + 2 + 12 * i;
          if (u16(e) === 0x0112) orientation = u16(e + 8);
        }
      }
    }
    // SOF0-15, except DHT (C4), JPG (C8) and DAC (CC), carries the frame size.
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return { height: d.readUInt16BE(seg + 1), width: d.readUInt16BE(seg + 3), components: d[seg + 5], orientation };
    }
    if (marker === 0xda) return undefined;  // scan data before any frame header
    p = seg + len - 2;
  }
  return undefined;
}

interface SourceInfo { format: string; width: number; height: number; hasAlpha: boolean; notes: string[] }

async function sourceInfo(data: Buffer, image: sharp.Sharp, maxPixels: number): Promise<SourceInfo> {
  const jpeg = jpegHeader(data);
  if (jpeg && jpeg.width > 0 && jpeg.height > 0 && [1, 3, 4].includes(jpeg.components)) {
    const notes: string[] = [];
    if (jpeg.components === 1) notes.push('greyscale converted to RGB');
    if (jpeg.components === 4) notes.push('cmyk converted to sRGB');
    if (jpeg.orientation !== 1) notes.push(`EXIF orientation ${jpeg.orientation} applied`);
    return { format: 'jpeg', width: jpeg.width, height: jpeg.height, hasAlpha: false, notes };
  }
  let meta: sharp.Metadata;
  try {
    meta = await image.metadata();
  } catch (e) {
    if (/pixel limit/i.test((e as Error).message)) throw new ImageSkip(`too many pixels (over ${maxPixels}): possible decompression bomb`);
    const kind = sniff(data);
    throw new ImageSkip(kind ? `corrupt or truncated ${kind} (its header does not parse)` : 'not an image (no decoder recognizes the bytes)');
  }
  const notes: string[] = [];
  if (meta.format !== 'jpeg') notes.push(`${meta.format} image`);
  if (meta.channels !== undefined && meta.channels < 3) notes.push('greyscale converted to RGB');
  else if (meta.space && meta.space !== 'srgb') notes.push(`${meta.space} converted to sRGB`);
  if (meta.hasAlpha) notes.push('alpha flattened on black');
  if (meta.orientation && meta.orientation !== 1) notes.push(`EXIF orientation ${meta.orientation} applied`);
  return { format: meta.format ?? 'image', width: meta.width ?? 0, height: meta.height ?? 0, hasAlpha: !!meta.hasAlpha, notes };
}

export async function decodeToRgb(data: Buffer, size: number, maxPixels = DEFAULT_MAX_PIXELS, kernel: ResizeKernel = 'lanczos3'): Promise<DecodedImage> {
  if (data.length === 0) throw new ImageSkip('empty file (0 bytes)');
  // One sharp instance for the header and the pipeline: the bytes are wrapped once.
  const image = sharp(data, { limitInputPixels: maxPixels, failOn: 'truncated' });
  const meta = await sourceInfo(data, image, maxPixels);
  if (!meta.width || !meta.height) throw new ImageSkip(`unreadable ${meta.format} header`);
  if (meta.width * meta.height > maxPixels) {
    throw new ImageSkip(`too many pixels (${meta.width}x${meta.height} > ${maxPixels}): possible decompression bomb`);
  }
  const notes = meta.notes;
  try {
    const oriented = image.rotate();
    const { data: pixels, info } = await (meta.hasAlpha ? oriented.flatten({ background: { r: 0, g: 0, b: 0 } }) : oriented)
      .resize(size, size, { fit: 'cover', position: 'centre', kernel })
      .toColourspace('srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3 || info.width !== size || info.height !== size) {
      throw new ImageSkip(`decoded to ${info.width}x${info.height}x${info.channels}, expected ${size}x${size}x3`);
    }
    return { pixels, note: notes.length ? notes.join('; ') : undefined };
  } catch (e) {
    if (e instanceof ImageSkip) throw e;
    // Not libvips's own words: sharp reads them from libvips's process-wide error buffer,
    // which concurrent decodes share, so the same file got another image's message in CI
    // ("buffer is not in a known format" for a truncated JPEG). The reason must not depend on
    // what else is decoding.
    throw new ImageSkip(`corrupt or truncated ${meta.format === 'jpeg' ? 'JPEG' : meta.format} (the decoder stopped before the end of the image)`);
  }
}
