/**
 * Binary layout of a presence map file (<id>.map). Little-endian. Written whole, in one pwrite.
 *
 * Header (128 bytes; version 1 maps had the first 96, without the data file record, and are read):
 *   0  u8[8]  magic "ODMAP\0\x01\0"
 *   8  u32    version (2)
 *  12  u32    flags (MAP_FLAG_*)
 *  16  u64    blob size (bytes of the uncompressed view = data file size)
 *  24  u32    frame size
 *  28  u32    frame count
 *  32  u8[32] blob id (sha256 of the uncompressed view)
 *  64  u64    last use, ms since the epoch (LRU eviction)
 *  72  u32    bitmap length in bytes (ceil(frame count / 8))
 *  76  u32    zero
 *  80  u64    data file st_dev    \
 *  88  u64    data file st_ino     | the data file as a clean close left it (MAP_FLAG_DATA_RECORD);
 *  96  u64    data file st_size    | zero otherwise. A data file that no longer matches is not
 * 104  u64    data file mtime, ns  | trusted: its frames are verified again before being served.
 * 112  u64    data file ctime, ns /
 * 120  u8[8]  zero
 * Bitmap: bit i (byte i>>3, bit i&7) set = frame i is written, durable and verified.
 * Trailer: u8[32] sha256 of header + bitmap (detects torn or foreign writes).
 */
export const MAP_MAGIC = Buffer.from([0x4f, 0x44, 0x4d, 0x41, 0x50, 0x00, 0x01, 0x00]);
export const MAP_VERSION = 2;
export const MAP_HEADER_SIZE = 128;
/** Version 1 maps (no data file record), still decoded. */
export const MAP_V1_HEADER_SIZE = 96;
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
  dataDev: 80,
  dataIno: 88,
  dataSize: 96,
  dataMtimeNs: 104,
  dataCtimeNs: 112,
} as const;

/** Set while a process has the map open for writing; still set on load = the last owner crashed. */
export const MAP_FLAG_OPEN = 1;
/** The data file record (dev..ctime) was written by a clean close. */
export const MAP_FLAG_DATA_RECORD = 2;

export function mapFileSize(frameCount: number, headerSize: number = MAP_HEADER_SIZE): number {
  return headerSize + Math.ceil(frameCount / 8) + MAP_CHECKSUM_SIZE;
}
