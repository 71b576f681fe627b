// CRC-32C (Castagnoli: reflected polynomial 0x82F63B78), the checksum of TFRecord framing
// (tensorboard.ts). Node has only zlib's CRC-32 (another polynomial) and no maintained
// CRC-32C package is a dependency of ours: a byte-wise table is small, and fast enough for
// event files of a few kilobytes written once per checkpoint.
const CASTAGNOLI_REFLECTED = 0x82f63b78;

const TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ CASTAGNOLI_REFLECTED : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

// crc32c(Buffer.from('123456789')) === 0xe3069283.
export function crc32c(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (let i = 0; i < data.length; i++) crc = TABLE[(crc ^ data[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

// TFRecord stores CRCs masked (rotated right by 15 bits plus a constant), so that a CRC
// computed over data that itself holds CRCs is unlikely to come out the same.
export function maskedCrc32c(data: Uint8Array): number {
  const crc = crc32c(data);
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0;
}
