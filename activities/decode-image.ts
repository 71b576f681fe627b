// One source image -> the paper's input: decode (any format sharp reads), honour EXIF
// orientation, convert greyscale/CMYK/alpha to sRGB RGB, resize the shorter side to S
// and crop the central SxS patch. Bad inputs become an ImageSkip with a reason, never a
// crash; inputs that are fine but unusual come back with a note saying what was converted.
import sharp from 'sharp';

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

// sharp's threads are shared by all decodes in the process; one decode per image at a
// time inside, concurrency across images comes from the caller.
sharp.cache(false);

// What the first bytes say the file is, for messages about files that do not decode.
function sniff(data: Buffer): string | undefined {
  if (data.length >= 3 && data[0] === 0xff && data[1] === 0xd8 && data[2] === 0xff) return 'JPEG';
  if (data.subarray(0, 4).toString('latin1') === '\x89PNG') return 'PNG';
  if (data.subarray(0, 3).toString('latin1') === 'GIF') return 'GIF';
  return undefined;
}

export async function decodeToRgb(data: Buffer, size: number, maxPixels = DEFAULT_MAX_PIXELS): Promise<DecodedImage> {
  if (data.length === 0) throw new ImageSkip('empty file (0 bytes)');
  // One sharp instance for the header and the pipeline: the bytes are wrapped once.
  const image = sharp(data, { limitInputPixels: maxPixels, failOn: 'truncated' });
  let meta: sharp.Metadata;
  try {
    meta = await image.metadata();
  } catch (e) {
    if (/pixel limit/i.test((e as Error).message)) throw new ImageSkip(`too many pixels (over ${maxPixels}): possible decompression bomb`);
    const kind = sniff(data);
    throw new ImageSkip(kind ? `corrupt or truncated ${kind} (its header does not parse)` : 'not an image (no decoder recognizes the bytes)');
  }
  if (!meta.width || !meta.height) throw new ImageSkip(`unreadable ${meta.format ?? 'image'} header`);
  if (meta.width * meta.height * (meta.pages ?? 1) > maxPixels && meta.width * meta.height > maxPixels) {
    throw new ImageSkip(`too many pixels (${meta.width}x${meta.height} > ${maxPixels}): possible decompression bomb`);
  }
  const notes: string[] = [];
  if (meta.format !== 'jpeg') notes.push(`${meta.format} image`);
  if (meta.channels !== undefined && meta.channels < 3) notes.push('greyscale converted to RGB');
  else if (meta.space && meta.space !== 'srgb') notes.push(`${meta.space} converted to sRGB`);
  if (meta.hasAlpha) notes.push('alpha flattened on black');
  if (meta.orientation && meta.orientation !== 1) notes.push(`EXIF orientation ${meta.orientation} applied`);
  try {
    const oriented = image.rotate();
    const { data: pixels, info } = await (meta.hasAlpha ? oriented.flatten({ background: { r: 0, g: 0, b: 0 } }) : oriented)
      .resize(size, size, { fit: 'cover', position: 'centre' })
      .toColourspace('srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3 || info.width !== size || info.height !== size) {
      throw new ImageSkip(`decoded to ${info.width}x${info.height}x${info.channels}, expected ${size}x${size}x3`);
    }
    return { pixels, note: notes.length ? notes.join('; ') : undefined };
  } catch (e) {
    if (e instanceof ImageSkip) throw e;
    throw new ImageSkip(`corrupt or truncated ${meta.format ?? 'image'}: ${(e as Error).message.split('\n')[0]}`);
  }
}
