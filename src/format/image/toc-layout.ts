/**
 * Binary layout of a blob's table of contents (every offset lives here once). Little-endian.
 *
 * Header (64 bytes):
 *   0  u8[8]  magic "ODTOC\0\x01\0"
 *   8  u32    version (1)
 *  12  u32    frame count
 *  16  u64    uncompressed size of the blob view
 *  24  u32    frame size (uncompressed bytes per frame)
 *  28  u8     compression code (COMPRESSION_CODES)
 *  29  u8[3]  zero
 *  32  u8[32] blob id (sha256 of the uncompressed view)
 * Entries (56 bytes each), in uncompressed order:
 *   0  u64    uncompressed offset
 *   8  u32    uncompressed size
 *  12  u64    compressed offset (inside the stored blob)
 *  20  u32    compressed size
 *  24  u8[32] sha256 of the uncompressed frame
 */
import type { Compression } from './types.js';

export const TOC_MAGIC = Buffer.from([0x4f, 0x44, 0x54, 0x4f, 0x43, 0x00, 0x01, 0x00]);
export const TOC_VERSION = 1;
export const TOC_HEADER_SIZE = 64;
export const TOC_ENTRY_SIZE = 56;
/** Refuse TOCs describing more frames than this (a 1 TiB blob at 64 KiB frames). */
export const TOC_MAX_FRAMES = 16 * 1024 * 1024;

export const TOC_HEADER = {
  magic: 0,
  version: 8,
  frameCount: 12,
  uncompressedSize: 16,
  frameSize: 24,
  compression: 28,
  blobId: 32,
} as const;

export const TOC_ENTRY = {
  uncompressedOffset: 0,
  uncompressedSize: 8,
  compressedOffset: 12,
  compressedSize: 20,
  digest: 24,
} as const;

export const COMPRESSION_CODES: Record<Compression, number> = { none: 0, gzip: 1 };
