/**
 * Reader: where an inode's bytes live (§7, §8.2). Maps a file range to extents on devices
 * (0 = bootstrap), merging neighbours; holes are explicit. Every table read is bounded by the image.
 */
import { FormatError, type ErrorContext } from '../../util/errors.js';
import { decodeChunkIndex } from './chunk-index.js';
import { BLOCK_MAP_ENTRY_SIZE, CHUNK_INDEX_SIZE, NULL_ADDR } from './layout.js';
import type { InodeRecord } from './read-inode.js';
import type { ErofsSuperblock } from './read-super.js';

export type FileExtent =
  | { fileOffset: number; length: number; hole: false; device: number; deviceOffset: number }
  | { fileOffset: number; length: number; hole: true };

export interface MapContext {
  sb: ErofsSuperblock;
  imageSize: number;
  read(offset: number, length: number): Buffer;
  ctx: ErrorContext;
}

/** roundup_pow_of_two(extra_devices + 1) - 1, as the kernel masks chunk device ids. */
function deviceIdMask(devices: number): number {
  let p = 1;
  while (p < devices + 1) p *= 2;
  return p - 1;
}

/** A device-0 block address may belong to a device mapped into the unified address space. */
function unify(sb: ErofsSuperblock, byteAddr: number): { device: number; offset: number } {
  for (let i = 0; i < sb.devices.length; i++) {
    const d = sb.devices[i]!;
    if (d.mappedBlkaddr === 0) continue;
    const start = d.mappedBlkaddr * sb.blockSize;
    if (byteAddr >= start && byteAddr < start + d.blocks * sb.blockSize) return { device: i + 1, offset: byteAddr - start };
  }
  return { device: 0, offset: byteAddr };
}

function push(out: FileExtent[], e: FileExtent): void {
  const last = out[out.length - 1];
  if (last !== undefined && last.fileOffset + last.length === e.fileOffset) {
    if (last.hole && e.hole) {
      last.length += e.length;
      return;
    }
    if (!last.hole && !e.hole && last.device === e.device && last.deviceOffset + last.length === e.deviceOffset) {
      last.length += e.length;
      return;
    }
  }
  out.push(e);
}

/** Extents covering [from, to) ∩ [0, size) of the inode's data, in file order. */
export function mapExtents(m: MapContext, ino: InodeRecord, from: number, to: number): FileExtent[] {
  const bad = (msg: string): FormatError => new FormatError(`erofs: inode ${ino.nid}: ${msg}`, { ...m.ctx, nid: ino.nid });
  const { sb } = m;
  const bs = sb.blockSize;
  const end = Math.min(to, ino.size);
  const out: FileExtent[] = [];
  if (from >= end) return out;

  const blockData = (fileOffset: number, length: number, byteAddr: number): void => {
    const u = unify(sb, byteAddr);
    if (u.device === 0 && u.offset + length > m.imageSize) {
      throw bad(`data at byte ${u.offset} (+${length}) is past the end of the image`);
    }
    push(out, { fileOffset, length, hole: false, device: u.device, deviceOffset: u.offset });
  };

  if (ino.layout === 'flat-plain' || ino.layout === 'flat-inline') {
    const nblocks = Math.ceil(ino.size / bs);
    const lastblk = ino.layout === 'flat-inline' ? nblocks - 1 : nblocks;
    const blocksEnd = lastblk * bs;
    if (from < blocksEnd) {
      const e = Math.min(end, blocksEnd);
      blockData(from, e - from, ino.rawBlkaddr * bs + from);
    }
    if (ino.layout === 'flat-inline' && end > blocksEnd) {
      const tailAt = ino.offset + ino.inodeSize + ino.xattrSize;
      const tailLen = ino.size - blocksEnd;
      if ((tailAt % bs) + tailLen > bs) throw bad(`inline tail of ${tailLen} bytes crosses a block boundary`);
      if (tailAt + tailLen > m.imageSize) throw bad('inline tail is past the end of the image');
      const s = Math.max(from, blocksEnd);
      push(out, { fileOffset: s, length: end - s, hole: false, device: 0, deviceOffset: tailAt + (s - blocksEnd) });
    }
    return out;
  }

  // CHUNK_BASED
  const chunkSize = 2 ** ino.chunkBits;
  const unit = ino.chunkIndexes ? CHUNK_INDEX_SIZE : BLOCK_MAP_ENTRY_SIZE;
  const count = Math.ceil(ino.size / chunkSize);
  const table = Math.ceil((ino.offset + ino.inodeSize + ino.xattrSize) / unit) * unit;
  if (table + count * unit > m.imageSize) throw bad(`chunk table of ${count} entries at byte ${table} is past the end of the image`);
  const mask = deviceIdMask(sb.devices.length);
  const first = Math.floor(from / chunkSize);
  const last = Math.ceil(end / chunkSize);
  // Read the needed part of the table in one go: bounded by the image size checked above.
  const raw = m.read(table + first * unit, (last - first) * unit);
  for (let c = first; c < last; c++) {
    const la = c * chunkSize;
    const s = Math.max(from, la);
    const e = Math.min(end, la + chunkSize);
    const at = (c - first) * unit;
    let device = 0;
    let blkaddr: number;
    if (ino.chunkIndexes) {
      const idx = decodeChunkIndex(raw, at);
      blkaddr = idx.blkaddr;
      device = idx.deviceId & mask;
    } else {
      blkaddr = raw.readUInt32LE(at);
    }
    if (blkaddr === NULL_ADDR) {
      push(out, { fileOffset: s, length: e - s, hole: true });
      continue;
    }
    if (device === 0) {
      blockData(s, e - s, blkaddr * bs + (s - la));
    } else {
      if (device > sb.devices.length) throw bad(`chunk ${c} is on device ${device} but the image has ${sb.devices.length} devices`);
      push(out, { fileOffset: s, length: e - s, hole: false, device, deviceOffset: blkaddr * bs + (s - la) });
    }
  }
  return out;
}

/** Chunk table entries as the model describes them (null = hole). */
export function readChunkTable(m: MapContext, ino: InodeRecord): ({ device: number; blkaddr: number } | null)[] {
  const unit = ino.chunkIndexes ? CHUNK_INDEX_SIZE : BLOCK_MAP_ENTRY_SIZE;
  const count = Math.ceil(ino.size / 2 ** ino.chunkBits);
  const table = Math.ceil((ino.offset + ino.inodeSize + ino.xattrSize) / unit) * unit;
  if (table + count * unit > m.imageSize) {
    throw new FormatError(`erofs: inode ${ino.nid}: chunk table of ${count} entries is past the end of the image`, { ...m.ctx, nid: ino.nid });
  }
  const raw = m.read(table, count * unit);
  const mask = deviceIdMask(m.sb.devices.length);
  const out = new Array<{ device: number; blkaddr: number } | null>(count);
  for (let c = 0; c < count; c++) {
    const idx = ino.chunkIndexes ? decodeChunkIndex(raw, c * unit) : { deviceId: 0, blkaddr: raw.readUInt32LE(c * unit) };
    out[c] = idx.blkaddr === NULL_ADDR ? null : { device: idx.deviceId & mask, blkaddr: idx.blkaddr };
  }
  return out;
}
