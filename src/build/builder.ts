/**
 * The image builder: turns a source tree into an erofs bootstrap plus one or more data blobs.
 * Regular files are cut into chunks; identical chunks are stored once per image (sha256), all-zero
 * chunks become holes, small files live inline in the bootstrap. See docs/image-format.md.
 */
import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { UsageError } from '../util/errors.js';
import { writeErofs } from '../format/erofs/writer.js';
import type { ChunkLocation, DirNode, ErofsNode, FileNode, Xattr } from '../format/erofs/model.js';
import type { Compression } from '../format/image/types.js';
import type { ByteRange } from '../fetch/types.js';
import { BLOCK_SIZE, BlobWriter, type BuiltBlob } from './blob-writer.js';
import { BlobProgress, type GrowingBlob } from './growing-blob.js';
import type { SourceDir, SourceFile, SourceNode } from './source.js';

export const DEFAULT_CHUNK_SIZE = 1 << 20;
export const DEFAULT_FRAME_SIZE = 1 << 20;
/** Files up to this size are stored inline in the bootstrap (docs/image-format.md, "Small files"). */
export const DEFAULT_INLINE_MAX = 2048;
export const DEFAULT_GZIP_LEVEL = 1;

export interface BuildOptions {
  /** Where the blob files are written (as `blob-<i>.tmp`; the caller moves them). */
  workDir: string;
  chunkSize?: number;
  frameSize?: number;
  compression?: Compression;
  gzipLevel?: number;
  inlineMax?: number;
  /** Number of blobs files may name (SourceFile.blob < blobCount). Default 1. */
  blobCount?: number;
  /** Keep blobs that received no chunk (default: drop them and renumber devices). */
  keepEmptyBlobs?: boolean;
  /** Superblock build time; default now. */
  buildTime?: { sec: bigint; nsec: number };
  /**
   * Called once per blob before any byte of it is written, for a caller that consumes blobs while
   * they grow (convert's overlapped upload). The build never waits for it.
   */
  onBlob?: (blob: GrowingBlob) => void;
}

export interface BuildStats {
  files: number;
  dirs: number;
  symlinks: number;
  others: number;
  hardLinks: number;
  inlineFiles: number;
  /** Bytes of regular-file content (each inode once). */
  fileBytes: number;
  chunks: number;
  holeChunks: number;
  dedupedChunks: number;
  storedChunks: number;
}

export interface BuildResult {
  /** The uncompressed erofs bootstrap. */
  bootstrap: Buffer;
  /** Kept blobs in device order (device id = index + 1). */
  blobs: BuiltBlob[];
  chunkSize: number;
  stats: BuildStats;
}

export function checkChunkSize(n: number, what = 'chunk size'): number {
  if (!Number.isInteger(n) || n < BLOCK_SIZE || (n & (n - 1)) !== 0 || n > 1 << 30) {
    throw new UsageError(`${what} ${n} must be a power of two between 4096 and 1 GiB`);
  }
  return n;
}

export function checkFrameSize(n: number): number {
  if (!Number.isInteger(n) || n < BLOCK_SIZE || n % BLOCK_SIZE !== 0 || n > 64 << 20) {
    throw new UsageError(`frame size ${n} must be a multiple of 4096 between 4096 and 64 MiB`);
  }
  return n;
}

export async function buildImage(root: SourceDir, options: BuildOptions): Promise<BuildResult> {
  const chunkSize = checkChunkSize(options.chunkSize ?? DEFAULT_CHUNK_SIZE);
  const frameSize = checkFrameSize(options.frameSize ?? DEFAULT_FRAME_SIZE);
  const chunkBits = Math.log2(chunkSize);
  const compression = options.compression ?? 'gzip';
  const inlineMax = options.inlineMax ?? DEFAULT_INLINE_MAX;
  const blobCount = options.blobCount ?? 1;
  const frameOptions = { frameSize, compression, gzipLevel: options.gzipLevel ?? DEFAULT_GZIP_LEVEL };
  const progress: BlobProgress[] = [];
  const writers: BlobWriter[] = Array.from({ length: blobCount }, (_, i) => {
    const path = join(options.workDir, `blob-${i}.tmp`);
    if (options.onBlob === undefined) return new BlobWriter(path, frameOptions);
    const p = new BlobProgress(i, path);
    progress.push(p);
    return new BlobWriter(path, frameOptions, (stored) => p.advance(stored));
  });
  for (const p of progress) options.onBlob!(p);
  const stats: BuildStats = {
    files: 0, dirs: 0, symlinks: 0, others: 0, hardLinks: 0, inlineFiles: 0, fileBytes: 0,
    chunks: 0, holeChunks: 0, dedupedChunks: 0, storedChunks: 0,
  };
  /** Every location handed out, so devices can be renumbered when empty blobs are dropped. */
  const locations: ChunkLocation[] = [];
  const byDigest = new Map<string, ChunkLocation>();
  const done = new Map<SourceFile, FileNode>();

  /** Files whose data is still to be laid out, in tree order. */
  const pending: { src: SourceFile; node: FileNode; blob: number }[] = [];

  const fileNode = (src: SourceFile): FileNode => {
    const known = done.get(src);
    if (known) {
      stats.hardLinks++;
      return known;
    }
    stats.files++;
    const size = src.content.size;
    stats.fileBytes += size;
    const blob = src.blob ?? 0;
    if (!Number.isInteger(blob) || blob < 0 || blob >= blobCount) throw new RangeError(`file names blob ${blob} of ${blobCount}`);
    const node: FileNode = { kind: 'file', perm: src.perm, uid: src.uid, gid: src.gid, mtime: src.mtime, mtimeNsec: src.mtimeNsec, xattrs: src.xattrs, size, data: { kind: 'inline', bytes: EMPTY } };
    done.set(src, node);
    if (size > 0) pending.push({ src, node, blob });
    return node;
  };

  const layOutFile = async (src: SourceFile, node: FileNode, blob: number): Promise<void> => {
    const size = node.size;
    const reader = await src.content.open();
    try {
      if (size <= inlineMax && fitsInline(size, src.xattrs)) {
        stats.inlineFiles++;
        node.data = { kind: 'inline', bytes: Buffer.from(await reader.read(0, size)) };
        return;
      }
      const regions = await reader.dataRegions();
      const chunks: (ChunkLocation | null)[] = [];
      for (let off = 0; off < size; off += chunkSize) {
        const len = Math.min(chunkSize, size - off);
        stats.chunks++;
        if (regions && !overlaps(regions, off, len)) {
          stats.holeChunks++;
          chunks.push(null);
          continue;
        }
        const data = await reader.read(off, len);
        if (isZero(data)) {
          stats.holeChunks++;
          chunks.push(null);
          continue;
        }
        const digest = createHash('sha256').update(data).digest('hex');
        const seen = byDigest.get(digest);
        if (seen) {
          stats.dedupedChunks++;
          chunks.push(seen);
          continue;
        }
        const writer = writers[blob]!;
        const loc: ChunkLocation = { device: blob + 1, blkaddr: await writer.appendChunk(data) };
        stats.storedChunks++;
        locations.push(loc);
        byDigest.set(digest, loc);
        chunks.push(loc);
      }
      node.data = { kind: 'chunks', chunkBits, chunks };
    } finally {
      await reader.close();
    }
  };

  const buildNode = async (src: SourceNode): Promise<ErofsNode> => {
    switch (src.kind) {
      case 'file':
        return fileNode(src);
      case 'dir': {
        stats.dirs++;
        const dir: DirNode = { kind: 'dir', perm: src.perm, uid: src.uid, gid: src.gid, mtime: src.mtime, mtimeNsec: src.mtimeNsec, xattrs: src.xattrs, entries: [] };
        for (const e of src.entries) dir.entries.push({ name: e.name, node: await buildNode(e.node) });
        return dir;
      }
      case 'symlink':
        stats.symlinks++;
        return src;
      default:
        stats.others++;
        return src;
    }
  };

  let built: BuiltBlob[] = [];
  try {
    const rootNode = (await buildNode(root)) as DirNode;
    // Lower blobs first, so a chunk shared with an upper layer is stored in the lower layer's blob:
    // a layer's blob then never depends on the layers above it, and images sharing a layer share its blob.
    const byBlob = pending.map((p, order) => ({ ...p, order })).sort((a, b) => a.blob - b.blob || a.order - b.order);
    for (const p of byBlob) await layOutFile(p.src, p.node, p.blob);
    for (const [i, w] of writers.entries()) {
      built.push(await w.finish());
      progress[i]?.finish();
    }
    const keep = built.map((b) => options.keepEmptyBlobs === true || b.descriptor.uncompressedSize > 0);
    built.forEach((b, i) => progress[i]?.resolve(keep[i] ? { digest: b.descriptor.digest, size: b.descriptor.size } : null));
    const newDevice = new Map<number, number>();
    let next = 1;
    keep.forEach((k, i) => {
      if (k) newDevice.set(i + 1, next++);
    });
    for (const loc of locations) loc.device = newDevice.get(loc.device)!;
    for (let i = 0; i < built.length; i++) if (!keep[i]) await rm(built[i]!.path, { force: true });
    built = built.filter((_, i) => keep[i]);
    const now = options.buildTime ?? nowTime();
    const bootstrap = writeErofs({
      root: rootNode,
      devices: built.map((b) => ({ tag: b.descriptor.blobId, blocks: b.descriptor.uncompressedSize / BLOCK_SIZE })),
      buildTime: now.sec,
      buildTimeNsec: now.nsec,
    });
    return { bootstrap, blobs: built, chunkSize, stats };
  } catch (err) {
    for (const p of progress) p.fail(err);
    for (const w of writers) await w.abort();
    for (const w of writers) await rm(w.path, { force: true });
    throw err;
  }
}

const EMPTY = Buffer.alloc(0);
const ZERO_SLICE = Buffer.alloc(1 << 20);

/** memcmp against zeros, a slice at a time: far faster than a byte loop in JavaScript. */
export function isZero(buf: Buffer): boolean {
  for (let at = 0; at < buf.length; at += ZERO_SLICE.length) {
    const part = buf.subarray(at, at + ZERO_SLICE.length);
    if (!part.equals(ZERO_SLICE.subarray(0, part.length))) return false;
  }
  return true;
}

/** Inline data must fit in one block with the inode and its inline xattrs (a conservative estimate). */
function fitsInline(size: number, xattrs: Xattr[]): boolean {
  const xattrBytes = xattrs.length === 0 ? 0 : 12 + xattrs.reduce((n, x) => n + ((4 + x.name.length + x.value.length + 3) & ~3), 0);
  return 64 + xattrBytes + size <= BLOCK_SIZE - 64;
}

function overlaps(regions: ByteRange[], offset: number, length: number): boolean {
  // Regions are few (sparse files) or one; a linear scan is fine.
  for (const r of regions) {
    if (r.offset < offset + length && offset < r.offset + r.length) return true;
  }
  return false;
}

function nowTime(): { sec: bigint; nsec: number } {
  const ns = BigInt(Date.now()) * 1_000_000n;
  return { sec: ns / 1_000_000_000n, nsec: Number(ns % 1_000_000_000n) };
}
