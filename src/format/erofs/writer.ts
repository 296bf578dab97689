/**
 * writeErofs: lay a model tree out as an uncompressed erofs image (bootstrap) that Linux 6.1 mounts.
 *
 * Image layout: block 0 = 1024 zero bytes, superblock, device table (slot offset 9) when there are
 * devices, then inodes (meta_blkaddr 0, root first); then the shared-xattr blocks; then data
 * blocks (directory blocks, file bytes, long symlinks). Checksum last.
 */
import { FormatError } from '../../util/errors.js';
import { checksumRange, superblockChecksum } from './crc32c.js';
import { encodeChunkIndex } from './chunk-index.js';
import { encodeDeviceSlot } from './device-slot.js';
import { fileTypeOf } from './dirent.js';
import { encodeInodeCore, encodeRdev } from './inode-core.js';
import {
  BLKSZ, BLKSZBITS, CHUNK_INDEX_SIZE, COMPAT_MTIME, COMPAT_SB_CHKSUM, DATALAYOUT_CHUNK_BASED, DATALAYOUT_FLAT_INLINE,
  DEFAULT_DEVT_SLOTOFF, DEVICE_SLOT_SIZE, DEVICE_TAG_SIZE, EROFS_MAGIC, INCOMPAT_CHUNKED_FILE, INCOMPAT_DEVICE_TABLE,
  INODE_COMPACT_SIZE, INODE_EXTENDED_SIZE, NULL_ADDR, SB, SUPER_OFFSET, SUPER_SIZE, UUID_SIZE, VOLUME_NAME_SIZE,
} from './layout.js';
import type { ErofsImageSpec } from './model.js';
import { encodeSuperblock } from './superblock.js';
import { encodeDirBlocks } from './write-dir.js';
import { chunkTableOffset, placeDataBlocks, placeInodes, shapeInode, type InodeShape } from './write-layout.js';
import { collectInodes, type TreeInode } from './write-tree.js';
import { encodeInodeXattrs, planXattrs } from './write-xattr.js';

const MAX_ROOT_NID = 0xffff;

export function writeErofs(spec: ErofsImageSpec): Buffer {
  const blksz = BLKSZ;
  if (spec.devices.length > 0xffff) throw new FormatError(`erofs writer: ${spec.devices.length} devices (max 65535)`);
  for (const d of spec.devices) {
    if (Buffer.byteLength(d.tag) > DEVICE_TAG_SIZE) throw new FormatError(`erofs writer: device tag ${JSON.stringify(d.tag)} longer than ${DEVICE_TAG_SIZE} bytes`);
    if (!Number.isInteger(d.blocks) || d.blocks < 0 || d.blocks > 0xffffffff) throw new FormatError(`erofs writer: device ${d.tag} has ${d.blocks} blocks`);
  }
  const volumeName = Buffer.from(spec.volumeName ?? '', 'utf8');
  if (volumeName.length >= VOLUME_NAME_SIZE) throw new FormatError(`erofs writer: volume name ${JSON.stringify(spec.volumeName)} longer than 15 bytes`);
  const uuid = spec.uuid ?? Buffer.alloc(UUID_SIZE);
  if (uuid.length !== UUID_SIZE) throw new FormatError(`erofs writer: uuid must be 16 bytes, got ${uuid.length}`);

  const tree = collectInodes(spec.root);
  const names = describer(tree);
  const xattrs = planXattrs(tree.map((t) => t.node.xattrs), blksz, names);
  const shapes = tree.map((t, i) => shapeInode(t, xattrs.perInode[i]!, spec, blksz, () => names(i)));

  const devtEnd = spec.devices.length > 0 ? DEFAULT_DEVT_SLOTOFF * DEVICE_SLOT_SIZE + spec.devices.length * DEVICE_SLOT_SIZE : SUPER_OFFSET + SUPER_SIZE;
  const metaEnd = placeInodes(shapes, devtEnd, blksz);
  if (shapes[0]!.nid > MAX_ROOT_NID) throw new FormatError(`erofs writer: root nid ${shapes[0]!.nid} does not fit 16 bits (too many devices)`);
  const xattrBlkaddr = xattrs.shared.length > 0 ? Math.ceil(metaEnd / blksz) : 0;
  const dataStart = Math.ceil(metaEnd / blksz) + xattrs.shared.length / blksz;
  const totalBlocks = placeDataBlocks(shapes, dataStart);

  const img = Buffer.alloc(totalBlocks * blksz);
  const chunked = shapes.some((s) => s.datalayout === DATALAYOUT_CHUNK_BASED);
  encodeSuperblock({
    magic: EROFS_MAGIC, checksum: 0, featureCompat: COMPAT_SB_CHKSUM | COMPAT_MTIME, blkszbits: BLKSZBITS, sbExtslots: 0,
    rootNid: shapes[0]!.nid, inos: BigInt(shapes.length), buildTime: spec.buildTime, buildTimeNsec: spec.buildTimeNsec,
    blocks: totalBlocks, metaBlkaddr: 0, xattrBlkaddr, uuid, volumeName,
    featureIncompat: (chunked ? INCOMPAT_CHUNKED_FILE : 0) | (spec.devices.length > 0 ? INCOMPAT_DEVICE_TABLE : 0),
    u1: 0, extraDevices: spec.devices.length, devtSlotoff: spec.devices.length > 0 ? DEFAULT_DEVT_SLOTOFF : 0,
    dirblkbits: 0, xattrPrefixCount: 0, xattrPrefixStart: 0, packedNid: 0n,
  }, img, SUPER_OFFSET);
  spec.devices.forEach((d, i) => {
    encodeDeviceSlot({ tag: Buffer.from(d.tag, 'utf8'), blocks: d.blocks, mappedBlkaddr: 0 }, img, (DEFAULT_DEVT_SLOTOFF + i) * DEVICE_SLOT_SIZE);
  });
  if (xattrBlkaddr > 0) xattrs.shared.copy(img, xattrBlkaddr * blksz);
  for (const s of shapes) encodeInode(s, shapes, img, blksz);

  const { start, end } = checksumRange(blksz);
  img.writeUInt32LE(superblockChecksum(img.subarray(start, end)), SUPER_OFFSET + SB.checksum);
  return img;
}

function describer(tree: TreeInode[]): (i: number) => string {
  // Paths cost memory for big trees; build them only when an error needs one.
  return (i) => {
    const target = tree[i]!;
    for (const t of tree) for (const c of t.children) if (c.inode === target && c.name.toString() !== '.' && c.name.toString() !== '..') return `"${c.name.toString()}" (inode ${i})`;
    return i === 0 ? '/' : `inode ${i}`;
  };
}

function encodeInode(s: InodeShape, shapes: readonly InodeShape[], img: Buffer, blksz: number): void {
  const n = s.tree.node;
  let u = s.blkaddr;
  if (s.datalayout === DATALAYOUT_CHUNK_BASED) u = s.chunkFormat;
  else if (n.kind === 'chardev' || n.kind === 'blockdev') u = encodeRdev(n.rdevMajor, n.rdevMinor);
  else if (n.kind === 'fifo' || n.kind === 'socket') u = 0;
  encodeInodeCore({
    extended: s.extended, datalayout: s.datalayout, formatExtra: 0, xattrIcount: s.xattrs.icount, mode: s.mode,
    nlink: s.tree.nlink, size: s.size, u, ino: s.tree.index, uid: n.uid, gid: n.gid,
    mtime: s.extended ? n.mtime : 0n, mtimeNsec: s.extended ? n.mtimeNsec : 0,
  }, img, s.metaPos);
  const afterInode = s.metaPos + (s.extended ? INODE_EXTENDED_SIZE : INODE_COMPACT_SIZE);
  encodeInodeXattrs(s.xattrs, img, afterInode);
  const tailAt = afterInode + s.xattrs.size;

  if (s.datalayout === DATALAYOUT_CHUNK_BASED && n.kind === 'file' && n.data.kind === 'chunks') {
    let at = s.metaPos + chunkTableOffset(s);
    for (const c of n.data.chunks) {
      encodeChunkIndex(c === null ? { advise: 0, deviceId: 0, blkaddr: NULL_ADDR } : { advise: 0, deviceId: c.device, blkaddr: c.blkaddr }, img, at);
      at += CHUNK_INDEX_SIZE;
    }
    return;
  }
  let bytes = s.content;
  if (s.dir !== undefined) {
    const entries = s.tree.children.map((c) => ({ name: c.name, nid: shapes[c.inode.index]!.nid, fileType: fileTypeOf(c.inode.node.kind) }));
    bytes = encodeDirBlocks(entries, s.dir, blksz);
  }
  if (bytes === undefined || bytes.length === 0) return;
  const inBlocks = s.datalayout === DATALAYOUT_FLAT_INLINE ? bytes.length - s.tailLen : bytes.length;
  if (inBlocks > 0) bytes.copy(img, s.blkaddr * blksz, 0, inBlocks);
  if (s.tailLen > 0) bytes.copy(img, tailAt, inBlocks);
}
