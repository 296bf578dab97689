/** Encode/decode of the 12-byte directory entry (§9) and the file-type codes. */
import {
  DIRENT, FT_BLKDEV, FT_CHRDEV, FT_DIR, FT_FIFO, FT_REG_FILE, FT_SOCK, FT_SYMLINK,
} from './layout.js';
import type { NodeKind } from './model.js';

export interface Dirent {
  nid: bigint;
  nameoff: number;
  fileType: number;
}

export function encodeDirent(d: Dirent, buf: Buffer, at: number): void {
  buf.writeBigUInt64LE(d.nid, at + DIRENT.nid);
  buf.writeUInt16LE(d.nameoff, at + DIRENT.nameoff);
  buf.writeUInt8(d.fileType, at + DIRENT.fileType);
  buf.writeUInt8(0, at + DIRENT.reserved);
}

export function decodeDirent(buf: Buffer, at: number): Dirent {
  return {
    nid: buf.readBigUInt64LE(at + DIRENT.nid),
    nameoff: buf.readUInt16LE(at + DIRENT.nameoff),
    fileType: buf.readUInt8(at + DIRENT.fileType),
  };
}

const TYPE_OF_KIND: Record<NodeKind, number> = {
  file: FT_REG_FILE, dir: FT_DIR, chardev: FT_CHRDEV, blockdev: FT_BLKDEV, fifo: FT_FIFO, socket: FT_SOCK, symlink: FT_SYMLINK,
};
const KIND_OF_TYPE: (NodeKind | undefined)[] = [undefined, 'file', 'dir', 'chardev', 'blockdev', 'fifo', 'socket', 'symlink'];

export function fileTypeOf(kind: NodeKind): number {
  return TYPE_OF_KIND[kind];
}

/** undefined for FT_UNKNOWN and anything out of range. */
export function kindOfFileType(ft: number): NodeKind | undefined {
  return KIND_OF_TYPE[ft];
}
