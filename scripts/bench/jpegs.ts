// Photo-like test JPEGs for the benchmarks: smooth colour fields with texture and noise
// (so they have a photo's entropy), quality 90; the same bytes on every run.
import sharp from 'sharp';

export async function photoLikeJpegs(n: number, width: number, height: number): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const raw = Buffer.alloc(width * height * 3);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        for (let c = 0; c < 3; c++) {
          const v = 128 + 80 * Math.sin((x * (c + 1)) / (17 + i) + y / (23 + c)) + 30 * Math.sin(x * y * 0.001 * (i + 1)) + ((x * 7919 + y * 104729 + c * 31 + i) % 41) - 20;
          raw[(y * width + x) * 3 + c] = Math.max(0, Math.min(255, v));
        }
      }
    }
    out.push(await sharp(raw, { raw: { width, height, channels: 3 } }).jpeg({ quality: 90 }).toBuffer());
  }
  return out;
}
