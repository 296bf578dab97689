/**
 * The builder's input: a tree shaped like the erofs model, but whose regular files carry a content
 * provider instead of laid-out data. A directory scan (scan-dir.ts) makes one; `ondemand convert` can
 * make one from merged tar layers. Hard links are the same SourceFile object in several directories.
 */
import type { ErofsNodeBase, DeviceNode, SpecialNode, SymlinkNode } from '../format/erofs/model.js';
import type { ByteRange } from '../fetch/types.js';

/** Random access to one file's bytes while the builder reads it. */
export interface ContentReader {
  /** Exactly `length` bytes at `offset` (the caller never reads past the size). */
  read(offset: number, length: number): Promise<Buffer>;
  /**
   * Regions that may hold non-zero bytes, ascending (sparse files); everything else reads as zeros.
   * null when unknown: the builder then reads everything and still turns zero chunks into holes.
   */
  dataRegions(): Promise<ByteRange[] | null>;
  close(): Promise<void>;
}

export interface FileContent {
  readonly size: number;
  open(): Promise<ContentReader>;
}

export interface SourceFile extends ErofsNodeBase {
  kind: 'file';
  content: FileContent;
  /** Index of the blob (0-based, e.g. the source layer) that receives this file's new chunks. Default 0. */
  blob?: number;
}

export interface SourceDirEntry {
  name: Buffer;
  node: SourceNode;
}

export interface SourceDir extends ErofsNodeBase {
  kind: 'dir';
  entries: SourceDirEntry[];
}

export type SourceNode = SourceFile | SourceDir | SymlinkNode | DeviceNode | SpecialNode;

/** Content held in memory (tests, tar entries small enough to buffer). */
export function bufferContent(bytes: Buffer): FileContent {
  return {
    size: bytes.length,
    open: async () => ({
      read: async (offset, length) => bytes.subarray(offset, offset + length),
      dataRegions: async () => null,
      close: async () => undefined,
    }),
  };
}
