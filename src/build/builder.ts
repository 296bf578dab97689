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
import type { ChunkLocation, DirNode, ErofsNode, FileData, FileNode, Xattr } from '../format/erofs/model.js';
import type { Compression } from '../format/image/types.js';
import type { ByteRange } from '../fetch/types.js';
import { BLOCK_SIZE, BlobWriter, type BuiltBlob } from './blob-writer.js';
import { BlobProgress, type GrowingBlob } from './growing-blob.js';
import { bufferContent, type FileContent, type SourceDir, type SourceFile, type SourceNode } from './source.js';

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
  return new ImageBuilder(options).build(root);
}

/** Where a lower layer's copy of a chunk can be read, should no surviving lower file store it. */
interface LowerChunk {
  content: FileContent;
  offset: number;
  length: number;
}

/** A streamed file's chunk that a lower layer also has: resolved once the lower blobs are laid out. */
interface DeferredChunk {
  chunks: (ChunkLocation | null)[];
  index: number;
  digest: string;
  blob: number;
}

/**
 * One build. `build(root)` lays out every file in tree order, lower blobs first. A caller whose files
 * arrive as streams and are known to be final (convert's top layer) can lay them out as they come,
 * with `layOutStream`, before the tree is complete: download, chunking, compression and upload then
 * overlap, and no work copy of the bodies is written. Such a file's chunks that a lower layer also has
 * (`noteLowerChunks`) still end up in the lower blob when a lower file keeps them, as in tree order.
 */
export class ImageBuilder {
  readonly chunkSize: number;
  private readonly chunkBits: number;
  private readonly inlineMax: number;
  private readonly blobCount: number;
  private readonly progress: BlobProgress[] = [];
  private readonly writers: BlobWriter[];
  readonly stats: BuildStats = {
    files: 0, dirs: 0, symlinks: 0, others: 0, hardLinks: 0, inlineFiles: 0, fileBytes: 0,
    chunks: 0, holeChunks: 0, dedupedChunks: 0, storedChunks: 0,
  };
  /** Every location handed out, so devices can be renumbered when empty blobs are dropped. */
  private readonly locations: ChunkLocation[] = [];
  private readonly byDigest = new Map<string, ChunkLocation>();
  private readonly lowerChunks = new Map<string, LowerChunk>();
  /** Chunk digests known before layout (lower layers' spooled files). */
  private readonly knownDigests = new WeakMap<FileContent, (string | null)[]>();
  private readonly deferred: DeferredChunk[] = [];
  /** Contents laid out while streaming, with their data. */
  private readonly streamed = new WeakMap<FileContent, FileData>();
  private failed = false;

  constructor(private readonly options: BuildOptions) {
    this.chunkSize = checkChunkSize(options.chunkSize ?? DEFAULT_CHUNK_SIZE);
    const frameSize = checkFrameSize(options.frameSize ?? DEFAULT_FRAME_SIZE);
    this.chunkBits = Math.log2(this.chunkSize);
    this.inlineMax = options.inlineMax ?? DEFAULT_INLINE_MAX;
    this.blobCount = options.blobCount ?? 1;
    const frameOptions = { frameSize, compression: options.compression ?? 'gzip', gzipLevel: options.gzipLevel ?? DEFAULT_GZIP_LEVEL };
    this.writers = Array.from({ length: this.blobCount }, (_, i) => {
      const path = join(options.workDir, `blob-${i}.tmp`);
      if (options.onBlob === undefined) return new BlobWriter(path, frameOptions);
      const p = new BlobProgress(i, path);
      this.progress.push(p);
      return new BlobWriter(path, frameOptions, (stored) => p.advance(stored));
    });
    for (const p of this.progress) options.onBlob!(p);
  }

  /**
   * Chunk digests of a lower layer's file (null: an all-zero chunk), computed while its body was
   * spooled: streamed files defer chunks a lower layer has, and the lower file's layout skips hashing.
   */
  noteLowerChunks(content: FileContent, digests: (string | null)[]): void {
    this.knownDigests.set(content, digests);
    digests.forEach((d, i) => {
      if (d === null || this.lowerChunks.has(d)) return;
      const offset = i * this.chunkSize;
      this.lowerChunks.set(d, { content, offset, length: Math.min(this.chunkSize, content.size - offset) });
    });
  }

  /**
   * Lays out a final file's body (`size` bytes) as it streams in, into blob `blob`. Files small enough
   * to be inline are kept in memory for the tree pass instead. The returned content is the file's for
   * `build`.
   */
  async layOutStream(body: AsyncIterable<Buffer>, size: number, blob: number): Promise<FileContent> {
    this.checkBlob(blob);
    if (size <= this.inlineMax) {
      const pieces: Buffer[] = [];
      for await (const piece of body) pieces.push(piece);
      return bufferContent(Buffer.concat(pieces));
    }
    // One chunk buffer per file: a placed chunk is copied into its frame before placeChunk returns.
    const chunk = Buffer.allocUnsafe(Math.min(this.chunkSize, size));
    const chunks: (ChunkLocation | null)[] = [];
    let fill = 0;
    let total = 0;
    for await (const piece of body) {
      total += piece.length;
      let at = 0;
      while (at < piece.length) {
        const n = piece.copy(chunk, fill, at);
        fill += n;
        at += n;
        if (fill === chunk.length) {
          await this.placeChunk(chunk, blob, chunks);
          fill = 0;
        }
      }
    }
    if (fill > 0) await this.placeChunk(chunk.subarray(0, fill), blob, chunks);
    const content: FileContent = { size: total, open: () => Promise.reject(new Error('a streamed file is laid out already')) };
    this.streamed.set(content, { kind: 'chunks', chunkBits: this.chunkBits, chunks });
    return content;
  }

  /** A streamed chunk: a hole, a copy of one stored before, a lower layer's (deferred), or stored now. */
  private async placeChunk(data: Buffer, blob: number, chunks: (ChunkLocation | null)[]): Promise<void> {
    this.stats.chunks++;
    if (isZero(data)) {
      this.stats.holeChunks++;
      chunks.push(null);
      return;
    }
    const digest = sha256Hex(data);
    if (this.usable(digest, blob) === undefined && this.lowerChunks.has(digest)) {
      this.deferred.push({ chunks, index: chunks.length, digest, blob });
      chunks.push(null);
      return;
    }
    chunks.push(await this.copyOrStore(data, digest, blob));
  }

  /** The stored copy of `digest` that blob `blob` may point at, or `data` stored now. */
  private async copyOrStore(data: Buffer | (() => Promise<Buffer>), digest: string, blob: number): Promise<ChunkLocation> {
    const seen = this.usable(digest, blob);
    if (seen !== undefined) {
      this.stats.dedupedChunks++;
      return seen;
    }
    return this.store(typeof data === 'function' ? await data() : data, digest, blob);
  }

  private async store(data: Buffer, digest: string, blob: number): Promise<ChunkLocation> {
    const loc: ChunkLocation = { device: blob + 1, blkaddr: await this.writers[blob]!.appendChunk(data) };
    this.stats.storedChunks++;
    this.locations.push(loc);
    this.byDigest.set(digest, loc);
    return loc;
  }

  private checkBlob(blob: number): void {
    if (!Number.isInteger(blob) || blob < 0 || blob >= this.blobCount) throw new RangeError(`file names blob ${blob} of ${this.blobCount}`);
  }

  /** Lays out what is left, writes the bootstrap and finishes the blobs. */
  async build(root: SourceDir, buildTime = this.options.buildTime): Promise<BuildResult> {
    const done = new Map<SourceFile, FileNode>();
    /** Files whose data is still to be laid out, in tree order. */
    const pending: { src: SourceFile; node: FileNode; blob: number }[] = [];

    const fileNode = (src: SourceFile): FileNode => {
      const known = done.get(src);
      if (known) {
        this.stats.hardLinks++;
        return known;
      }
      this.stats.files++;
      const size = src.content.size;
      this.stats.fileBytes += size;
      const blob = src.blob ?? 0;
      this.checkBlob(blob);
      const node: FileNode = { kind: 'file', perm: src.perm, uid: src.uid, gid: src.gid, mtime: src.mtime, mtimeNsec: src.mtimeNsec, xattrs: src.xattrs, size, data: { kind: 'inline', bytes: EMPTY } };
      done.set(src, node);
      const streamed = this.streamed.get(src.content);
      if (streamed !== undefined) node.data = streamed;
      else if (size > 0) pending.push({ src, node, blob });
      return node;
    };

    const buildNode = (src: SourceNode): ErofsNode => {
      switch (src.kind) {
        case 'file':
          return fileNode(src);
        case 'dir': {
          this.stats.dirs++;
          const dir: DirNode = { kind: 'dir', perm: src.perm, uid: src.uid, gid: src.gid, mtime: src.mtime, mtimeNsec: src.mtimeNsec, xattrs: src.xattrs, entries: [] };
          for (const e of src.entries) dir.entries.push({ name: e.name, node: buildNode(e.node) });
          return dir;
        }
        case 'symlink':
          this.stats.symlinks++;
          return src;
        default:
          this.stats.others++;
          return src;
      }
    };

    let built: BuiltBlob[] = [];
    try {
      const rootNode = buildNode(root) as DirNode;
      // Lower blobs first, so a chunk shared with an upper layer is stored in the lower layer's blob:
      // a layer's blob then never depends on the layers above it, and images sharing a layer share its blob.
      const byBlob = pending.map((p, order) => ({ ...p, order })).sort((a, b) => a.blob - b.blob || a.order - b.order);
      for (const p of byBlob) await this.layOutFile(p.src, p.node, p.blob);
      await this.resolveDeferred();
      for (const [i, w] of this.writers.entries()) {
        built.push(await w.finish());
        this.progress[i]?.finish();
      }
      const keep = built.map((b) => this.options.keepEmptyBlobs === true || b.descriptor.uncompressedSize > 0);
      built.forEach((b, i) => this.progress[i]?.resolve(keep[i] ? { digest: b.descriptor.digest, size: b.descriptor.size } : null));
      const newDevice = new Map<number, number>();
      let next = 1;
      keep.forEach((k, i) => {
        if (k) newDevice.set(i + 1, next++);
      });
      for (const loc of this.locations) loc.device = newDevice.get(loc.device)!;
      for (let i = 0; i < built.length; i++) if (!keep[i]) await rm(built[i]!.path, { force: true });
      built = built.filter((_, i) => keep[i]);
      const now = buildTime ?? nowTime();
      const bootstrap = writeErofs({
        root: rootNode,
        devices: built.map((b) => ({ tag: b.descriptor.blobId, blocks: b.descriptor.uncompressedSize / BLOCK_SIZE })),
        buildTime: now.sec,
        buildTimeNsec: now.nsec,
      });
      return { bootstrap, blobs: built, chunkSize: this.chunkSize, stats: this.stats };
    } catch (err) {
      await this.abort(err);
      throw err;
    }
  }

  /** Ends a build that will not finish: observers hear why, the work files go. */
  async abort(err: unknown): Promise<void> {
    if (this.failed) return;
    this.failed = true;
    for (const p of this.progress) p.fail(err);
    for (const w of this.writers) await w.abort();
    for (const w of this.writers) await rm(w.path, { force: true });
  }

  private async layOutFile(src: SourceFile, node: FileNode, blob: number): Promise<void> {
    const size = node.size;
    const known = this.knownDigests.get(src.content);
    const reader = await src.content.open();
    try {
      if (size <= this.inlineMax && fitsInline(size, src.xattrs)) {
        this.stats.inlineFiles++;
        node.data = { kind: 'inline', bytes: Buffer.from(await reader.read(0, size)) };
        return;
      }
      const regions = known === undefined ? await reader.dataRegions() : null;
      const chunks: (ChunkLocation | null)[] = [];
      for (let off = 0, i = 0; off < size; off += this.chunkSize, i++) {
        const len = Math.min(this.chunkSize, size - off);
        this.stats.chunks++;
        const knownDigest = known?.[i];
        if ((regions && !overlaps(regions, off, len)) || knownDigest === null) {
          this.stats.holeChunks++;
          chunks.push(null);
          continue;
        }
        if (knownDigest !== undefined) {
          chunks.push(await this.copyOrStore(() => reader.read(off, len), knownDigest, blob));
          continue;
        }
        const data = await reader.read(off, len);
        if (isZero(data)) {
          this.stats.holeChunks++;
          chunks.push(null);
          continue;
        }
        chunks.push(await this.copyOrStore(data, sha256Hex(data), blob));
      }
      node.data = { kind: 'chunks', chunkBits: this.chunkBits, chunks };
    } finally {
      await reader.close();
    }
  }

  /** A stored copy of `digest` a file of blob `blob` may refer to: never one in a blob above it. */
  private usable(digest: string, blob: number): ChunkLocation | undefined {
    const seen = this.byDigest.get(digest);
    return seen !== undefined && seen.device <= blob + 1 ? seen : undefined;
  }

  /** Streamed chunks a lower layer has: its stored copy, or (no surviving lower file kept it) stored now. */
  private async resolveDeferred(): Promise<void> {
    for (const d of this.deferred) {
      const seen = this.byDigest.get(d.digest);
      if (seen !== undefined) {
        this.stats.dedupedChunks++;
        d.chunks[d.index] = seen;
        continue;
      }
      const from = this.lowerChunks.get(d.digest)!;
      const reader = await from.content.open();
      try {
        const data = await reader.read(from.offset, from.length);
        d.chunks[d.index] = await this.store(data, d.digest, d.blob);
      } finally {
        await reader.close();
      }
    }
  }
}

const EMPTY = Buffer.alloc(0);

function sha256Hex(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}
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
