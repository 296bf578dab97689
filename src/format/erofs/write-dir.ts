/**
 * Writer: directory data (§9). Entries (already sorted, with . and ..) are packed into blocks of
 * dirents followed by names; a name never crosses a block; the last block may be short (the tail).
 */
import { DIRENT, DIRENT_SIZE } from './layout.js';

export interface DirBlock {
  first: number;
  count: number;
  /** Bytes used in this block (dirents + names). */
  used: number;
}

export interface DirLayout {
  blocks: DirBlock[];
  /** i_size: full blocks plus the used part of the last one. */
  size: number;
}

export function planDirBlocks(names: readonly Buffer[], blksz: number): DirLayout {
  const blocks: DirBlock[] = [];
  let cur: DirBlock = { first: 0, count: 0, used: 0 };
  for (let i = 0; i < names.length; i++) {
    const need = DIRENT_SIZE + names[i]!.length;
    if (cur.count > 0 && cur.used + need > blksz) {
      blocks.push(cur);
      cur = { first: i, count: 0, used: 0 };
    }
    cur.count++;
    cur.used += need;
  }
  blocks.push(cur);
  const size = (blocks.length - 1) * blksz + cur.used;
  return { blocks, size };
}

export interface DirEntryOut {
  name: Buffer;
  nid: number;
  fileType: number;
}

/** The directory's bytes (`layout.size` long; padding bytes are zero). */
export function encodeDirBlocks(entries: readonly DirEntryOut[], layout: DirLayout, blksz: number): Buffer {
  const out = Buffer.alloc(layout.size);
  layout.blocks.forEach((b, bi) => {
    const base = bi * blksz;
    let nameoff = b.count * DIRENT_SIZE;
    for (let k = 0; k < b.count; k++) {
      const e = entries[b.first + k]!;
      // Same bytes as encodeDirent, without a BigInt per entry (this loop runs for every name in the image).
      const at = base + k * DIRENT_SIZE;
      out.writeUInt32LE(e.nid % 0x1_0000_0000, at + DIRENT.nid);
      out.writeUInt32LE(Math.floor(e.nid / 0x1_0000_0000), at + DIRENT.nid + 4);
      out.writeUInt16LE(nameoff, at + DIRENT.nameoff);
      out[at + DIRENT.fileType] = e.fileType;
      e.name.copy(out, base + nameoff);
      nameoff += e.name.length;
    }
  });
  return out;
}
