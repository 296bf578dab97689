/**
 * Binary layout of a presence map file (<id>.map). Little-endian. Written whole, in one pwrite.
 *
 * Header (96 bytes):
 *   0  u8[8]  magic "ODMAP\0\x01\0"
 *   8  u32    version (1)
 *  12  u32    flags (MAP_FLAG_*)
 *  16  u64    blob size (bytes of the uncompressed view = data file size)
 *  24  u32    frame size
 *  28  u32    frame count
 *  32  u8[32] blob id (sha256 of the uncompressed view)
 *  64  u64    last use, ms since the epoch (LRU eviction)
 *  72  u32    bitmap length in bytes (ceil(frame count / 8))
 *  76  u8[20] zero
 * Bitmap: bit i (byte i>>3, bit i&7) set = frame i is written, durable and verified.
 * Trailer: u8[32] sha256 of header + bitmap (detects torn or foreign writes).
 */
export const MAP_MAGIC = Buffer.from([0x4f, 0x44, 0x4d, 0x41, 0x50, 0x00, 0x01, 0x00]);
export const MAP_VERSION = 1;
export const MAP_HEADER_SIZE = 96;
export const MAP_CHECKSUM_SIZE = 32;

export const MAP_HEADER = {
  magic: 0,
  version: 8,
  flags: 12,
  size: 16,
  frameSize: 24,
  frameCount: 28,
  blobId: 32,
  lastUsed: 64,
  bitmapLength: 72,
} as const;

/** Set while a process has the map open for writing; still set on load = the last owner crashed. */
export const MAP_FLAG_OPEN = 1;

export function mapFileSize(frameCount: number): number {
  return MAP_HEADER_SIZE + Math.ceil(frameCount / 8) + MAP_CHECKSUM_SIZE;
}
