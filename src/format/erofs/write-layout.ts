/**
 * Writer step 3: each inode's on-disk shape (compact/extended, data layout, sizes) and its place:
 * inodes packed 32-byte aligned from `metaStart`, each inode + xattrs (+ inline tail) kept inside
 * one block; chunk tables follow the inode 8-byte aligned; data blocks come after the metadata.
 */
import { FormatError } from '../../util/errors.js';
import {
  CHUNK_FORMAT_BLKBITS_MASK, CHUNK_FORMAT_INDEXES, CHUNK_INDEX_SIZE, DATALAYOUT_CHUNK_BASED, DATALAYOUT_FLAT_INLINE,
  DATALAYOUT_FLAT_PLAIN, INODE_COMPACT_SIZE, INODE_EXTENDED_SIZE, ISLOT_SIZE, NULL_ADDR, PERM_MASK,
  S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG, S_IFSOCK,
} from './layout.js';
import type { ErofsImageSpec, NodeKind } from './model.js';
import { planDirBlocks, type DirLayout } from './write-dir.js';
import type { TreeInode } from './write-tree.js';
import type { InodeXattrs } from './write-xattr.js';

const U16 = 0xffff;
const U32 = 0xffffffff;
const MAX_SYMLINK = 4095;

export interface InodeShape {
  tree: TreeInode;
  extended: boolean;
  mode: number;
  size: number;
  datalayout: number;
  /** Bytes stored inline right after the xattrs (FLAT_INLINE). */
  tailLen: number;
  /** Blocks in the data area (FLAT layouts). */
  blockCount: number;
  chunkCount: number;
  /** i_u.chunk_info.format for CHUNK_BASED. */
  chunkFormat: number;
  /** Directories. */
  dir?: DirLayout;
  /** Inline file bytes or symlink target. */
  content?: Buffer;
  xattrs: InodeXattrs;
  /** Filled by placeInodes / placeDataBlocks. */
  nid: number;
  metaPos: number;
  blkaddr: number;
}

const TYPE_BITS: Record<NodeKind, number> = {
  file: S_IFREG, dir: S_IFDIR, symlink: S_IFLNK, chardev: S_IFCHR, blockdev: S_IFBLK, fifo: S_IFIFO, socket: S_IFSOCK,
};

function isUint(v: number, max: number): boolean {
  return Number.isInteger(v) && v >= 0 && v <= max;
}

/** Decide an inode's shape from its node. `describe` names it in errors. */
export function shapeInode(t: TreeInode, xattrs: InodeXattrs, spec: ErofsImageSpec, blksz: number, describe: () => string): InodeShape {
  const n = t.node;
  // Only computed for an error message: finding a path is a search.
  let cached: string | undefined;
  const w = (): string => (cached ??= describe());
  if (!isUint(n.perm, PERM_MASK)) throw new FormatError(`erofs writer: bad permission bits ${n.perm} on ${w()}`);
  if (!isUint(n.uid, U32) || !isUint(n.gid, U32)) throw new FormatError(`erofs writer: uid/gid ${n.uid}/${n.gid} on ${w()} out of range`);
  if (!isUint(n.mtimeNsec, 999_999_999)) throw new FormatError(`erofs writer: mtimeNsec ${n.mtimeNsec} on ${w()} out of range`);
  if (t.nlink > U32) throw new FormatError(`erofs writer: ${t.nlink} links to ${w()}`);

  const shape: InodeShape = {
    tree: t, extended: false, mode: TYPE_BITS[n.kind] | n.perm, size: 0, datalayout: DATALAYOUT_FLAT_PLAIN,
    tailLen: 0, blockCount: 0, chunkCount: 0, chunkFormat: 0, xattrs, nid: -1, metaPos: -1, blkaddr: 0,
  };
  const flat = (size: number): void => {
    shape.size = size;
    const tail = size % blksz;
    shape.datalayout = tail === 0 ? DATALAYOUT_FLAT_PLAIN : DATALAYOUT_FLAT_INLINE;
    shape.tailLen = tail;
    shape.blockCount = Math.floor(size / blksz);
  };
  switch (n.kind) {
    case 'dir':
      shape.dir = planDirBlocks(t.children.map((c) => c.name), blksz);
      flat(shape.dir.size);
      break;
    case 'symlink':
      if (n.target.length < 1 || n.target.length > MAX_SYMLINK) {
        throw new FormatError(`erofs writer: symlink ${w()} target of ${n.target.length} bytes (must be 1..${MAX_SYMLINK})`);
      }
      if (n.target.includes(0)) throw new FormatError(`erofs writer: symlink ${w()} target contains NUL`);
      shape.content = n.target;
      flat(n.target.length);
      break;
    case 'file':
      if (!isUint(n.size, Number.MAX_SAFE_INTEGER)) throw new FormatError(`erofs writer: file ${w()} has bad size ${n.size}`);
      if (n.data.kind === 'inline') {
        if (n.data.bytes.length !== n.size) throw new FormatError(`erofs writer: file ${w()} size ${n.size} but ${n.data.bytes.length} inline bytes`);
        shape.content = n.data.bytes;
        flat(n.size);
      } else {
        const { chunkBits, chunks } = n.data;
        if (!Number.isInteger(chunkBits) || chunkBits < Math.log2(blksz) || chunkBits - Math.log2(blksz) > CHUNK_FORMAT_BLKBITS_MASK) {
          throw new FormatError(`erofs writer: file ${w()} has chunkBits ${chunkBits}`);
        }
        const count = Math.ceil(n.size / 2 ** chunkBits);
        if (chunks.length !== count) throw new FormatError(`erofs writer: file ${w()} of ${n.size} bytes needs ${count} chunks, has ${chunks.length}`);
        for (const c of chunks) {
          if (c === null) continue;
          if (!isUint(c.device, spec.devices.length) || c.device === 0) {
            throw new FormatError(`erofs writer: file ${w()} has a chunk on device ${c.device} (devices are 1..${spec.devices.length})`);
          }
          if (!isUint(c.blkaddr, U32 - 1)) throw new FormatError(`erofs writer: file ${w()} has a chunk at block ${c.blkaddr}`);
        }
        shape.size = n.size;
        shape.datalayout = DATALAYOUT_CHUNK_BASED;
        shape.chunkCount = count;
        shape.chunkFormat = CHUNK_FORMAT_INDEXES | (chunkBits - Math.log2(blksz));
      }
      break;
    case 'chardev':
    case 'blockdev':
      if (!isUint(n.rdevMajor, 0xfff) || !isUint(n.rdevMinor, 0xfffff)) {
        throw new FormatError(`erofs writer: device ${w()} number ${n.rdevMajor}:${n.rdevMinor} out of range`);
      }
      break;
    case 'fifo':
    case 'socket':
      break;
  }
  shape.extended =
    n.uid > U16 || n.gid > U16 || t.nlink > U16 || shape.size > U32 ||
    n.mtime !== spec.buildTime || n.mtimeNsec !== spec.buildTimeNsec;
  return shape;
}

function inodeBytes(s: InodeShape): number {
  return s.extended ? INODE_EXTENDED_SIZE : INODE_COMPACT_SIZE;
}

/** Offset of the chunk table relative to the inode start. */
export function chunkTableOffset(s: InodeShape): number {
  return Math.ceil((inodeBytes(s) + s.xattrs.size) / CHUNK_INDEX_SIZE) * CHUNK_INDEX_SIZE;
}

/** Bytes of metadata a placed inode occupies from its nid on (inode, xattrs, tail or chunk table). */
function recordBytes(s: InodeShape): number {
  if (s.datalayout === DATALAYOUT_CHUNK_BASED) return chunkTableOffset(s) + s.chunkCount * CHUNK_INDEX_SIZE;
  return inodeBytes(s) + s.xattrs.size + s.tailLen;
}

/**
 * Assign nids (meta_blkaddr is 0, so nid = byte / 32), root first at `metaStart`. Records that fit
 * a block go best-fit into the partly used metadata block with the least room that holds them
 * (like mkfs's bucket allocator, so padding is rare); bigger ones (long chunk tables, huge xattr
 * bodies) start on fresh blocks. Inline tails that cannot share a block with their inode become
 * FLAT_PLAIN. Returns the end byte of the metadata.
 */
export function placeInodes(shapes: InodeShape[], metaStart: number, blksz: number): number {
  const slotsPerBlock = blksz / ISLOT_SIZE;
  // free[k] = blocks with exactly k free slots at their end; used[b] = slots used in block b.
  const free: number[][] = Array.from({ length: slotsPerBlock + 1 }, () => []);
  const used: number[] = [];
  let nextBlock = 0;
  const newBlocks = (count: number): number => {
    const b = nextBlock;
    nextBlock += count;
    for (let i = b; i < nextBlock; i++) used[i] = 0;
    return b;
  };
  const release = (b: number): void => {
    const room = slotsPerBlock - used[b]!;
    if (room > 0) free[room]!.push(b);
  };
  // Block 0 holds the superblock and device table before metaStart.
  newBlocks(Math.floor(metaStart / blksz) + 1);
  used[nextBlock - 1] = Math.ceil((metaStart % blksz) / ISLOT_SIZE);
  release(nextBlock - 1);

  for (const s of shapes) {
    if (s.datalayout === DATALAYOUT_FLAT_INLINE && inodeBytes(s) + s.xattrs.size + s.tailLen > blksz) {
      // Too big to keep together: the tail goes to its own (zero-padded) data block.
      s.datalayout = DATALAYOUT_FLAT_PLAIN;
      s.blockCount += 1;
      s.tailLen = 0;
    }
    const bytes = recordBytes(s);
    const slots = Math.ceil(bytes / ISLOT_SIZE);
    let block = -1;
    if (slots <= slotsPerBlock) {
      for (let room = slots; room <= slotsPerBlock && block < 0; room++) {
        if (free[room]!.length > 0) block = free[room]!.pop()!;
      }
      if (block < 0) block = newBlocks(1);
    } else {
      block = newBlocks(Math.ceil(slots / slotsPerBlock));
    }
    const at = block * blksz + used[block]! * ISLOT_SIZE;
    s.metaPos = at;
    s.nid = at / ISLOT_SIZE;
    const endSlot = used[block]! + slots;
    const last = block + Math.floor((endSlot - 1) / slotsPerBlock);
    for (let b = block; b < last; b++) used[b] = slotsPerBlock;
    used[last] = ((endSlot - 1) % slotsPerBlock) + 1;
    release(last);
  }
  // Metadata ends at the end of the last block used.
  let end = 0;
  for (let b = nextBlock - 1; b >= 0; b--) {
    if (used[b]! > 0) {
      end = b * blksz + used[b]! * ISLOT_SIZE;
      break;
    }
  }
  return Math.max(end, metaStart);
}

/** Give data blocks to every inode that has some, from block `firstBlock`; returns the next free block. */
export function placeDataBlocks(shapes: InodeShape[], firstBlock: number): number {
  let next = firstBlock;
  for (const s of shapes) {
    if (s.blockCount > 0) {
      s.blkaddr = next;
      next += s.blockCount;
    } else {
      // mkfs convention: inline-only data has no block (NULL_ADDR); empty plain data points at 0.
      s.blkaddr = s.datalayout === DATALAYOUT_FLAT_INLINE ? NULL_ADDR : 0;
    }
  }
  if (next > U32) throw new FormatError(`erofs writer: image needs ${next} blocks (more than 2^32)`);
  return next;
}
