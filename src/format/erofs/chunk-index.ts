/** Encode/decode of chunk indexes (8 bytes) and block-map entries (4 bytes) (§7.3). */
import { BLOCK_MAP_ENTRY_SIZE, CHUNK_INDEX, CHUNK_INDEX_SIZE } from './layout.js';

export interface ChunkIndex {
  advise: number;
  deviceId: number;
  /** NULL_ADDR (0xFFFFFFFF) for a hole. */
  blkaddr: number;
}

export function encodeChunkIndex(c: ChunkIndex, buf: Buffer, at: number): void {
  buf.writeUInt16LE(c.advise, at + CHUNK_INDEX.advise);
  buf.writeUInt16LE(c.deviceId, at + CHUNK_INDEX.deviceId);
  buf.writeUInt32LE(c.blkaddr >>> 0, at + CHUNK_INDEX.blkaddr);
}

export function decodeChunkIndex(buf: Buffer, at: number): ChunkIndex {
  return {
    advise: buf.readUInt16LE(at + CHUNK_INDEX.advise),
    deviceId: buf.readUInt16LE(at + CHUNK_INDEX.deviceId),
    blkaddr: buf.readUInt32LE(at + CHUNK_INDEX.blkaddr),
  };
}

/** Size of one chunk table entry for a chunk format. */
export function chunkEntrySize(indexes: boolean): number {
  return indexes ? CHUNK_INDEX_SIZE : BLOCK_MAP_ENTRY_SIZE;
}
