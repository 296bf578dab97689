/**
 * Streams one data blob to disk: chunks are appended 4 KiB-aligned to the blob's uncompressed view,
 * the view is cut into frames compressed one by one, and the TOC is appended after the last frame.
 * Memory use is one frame, whatever the blob size.
 */
import { createHash, type Hash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { promisify } from 'node:util';
import { gzip as gzipCb } from 'node:zlib';
import { encodeToc } from '../format/image/toc.js';
import type { BlobDescriptor, BlobToc, Compression, FrameEntry } from '../format/image/types.js';

const gzip = promisify(gzipCb);
export const BLOCK_SIZE = 4096;

export interface FrameOptions {
  frameSize: number;
  compression: Compression;
  /** zlib level for gzip frames (docs/image-format.md explains the default). */
  gzipLevel: number;
}

/** A finished blob file: stored bytes = frames then TOC. */
export interface BuiltBlob {
  /** Path of the stored blob (frames + TOC). */
  path: string;
  descriptor: BlobDescriptor;
  toc: BlobToc;
}

export class BlobWriter {
  private fh: FileHandle | undefined;
  private readonly frame: Buffer;
  private fill = 0;
  /** Uncompressed bytes already flushed as frames. */
  private flushed = 0;
  private stored = 0;
  private readonly frames: FrameEntry[] = [];
  private readonly viewHash: Hash = createHash('sha256');
  private readonly storedHash: Hash = createHash('sha256');

  constructor(readonly path: string, private readonly options: FrameOptions) {
    if (options.frameSize <= 0 || options.frameSize % BLOCK_SIZE !== 0) throw new RangeError(`frame size ${options.frameSize} is not a multiple of 4096`);
    this.frame = Buffer.alloc(options.frameSize);
  }

  /** Uncompressed size so far (always a multiple of 4096). */
  get size(): number {
    return this.flushed + this.fill;
  }

  /** Appends one chunk at the current (block-aligned) end, pads it to 4 KiB; returns its block address. */
  async appendChunk(data: Buffer): Promise<number> {
    const blkaddr = this.size / BLOCK_SIZE;
    await this.append(data);
    const pad = (BLOCK_SIZE - (data.length % BLOCK_SIZE)) % BLOCK_SIZE;
    if (pad > 0) await this.append(ZERO_BLOCK.subarray(0, pad));
    return blkaddr;
  }

  private async append(data: Buffer): Promise<void> {
    let at = 0;
    while (at < data.length) {
      const n = Math.min(data.length - at, this.frame.length - this.fill);
      data.copy(this.frame, this.fill, at, at + n);
      this.fill += n;
      at += n;
      if (this.fill === this.frame.length) await this.flushFrame();
    }
  }

  private async flushFrame(): Promise<void> {
    if (this.fill === 0) return;
    const raw = this.frame.subarray(0, this.fill);
    const digest = createHash('sha256').update(raw).digest('hex');
    this.viewHash.update(raw);
    const stored = this.options.compression === 'gzip' ? await gzip(raw, { level: this.options.gzipLevel }) : raw;
    await this.write(stored);
    this.frames.push({
      uncompressedOffset: this.flushed, uncompressedSize: this.fill,
      compressedOffset: this.stored - stored.length, compressedSize: stored.length, digest,
    });
    this.flushed += this.fill;
    this.fill = 0;
  }

  private async write(bytes: Buffer): Promise<void> {
    this.fh ??= await open(this.path, 'w');
    let at = 0;
    while (at < bytes.length) {
      const { bytesWritten } = await this.fh.write(bytes, at, bytes.length - at, this.stored + at);
      at += bytesWritten;
    }
    this.storedHash.update(bytes);
    this.stored += bytes.length;
  }

  /** Flushes the last frame, appends the TOC, closes the file. */
  async finish(): Promise<BuiltBlob> {
    await this.flushFrame();
    const toc: BlobToc = {
      blobId: this.viewHash.digest('hex'),
      uncompressedSize: this.flushed,
      frameSize: this.options.frameSize,
      compression: this.options.compression,
      frames: this.frames,
    };
    const tocBytes = encodeToc(toc);
    const tocOffset = this.stored;
    await this.write(tocBytes);
    await this.fh?.close();
    this.fh = undefined;
    return {
      path: this.path,
      toc,
      descriptor: {
        digest: 'sha256:' + this.storedHash.digest('hex'),
        size: this.stored,
        blobId: toc.blobId,
        uncompressedSize: toc.uncompressedSize,
        tocOffset,
        tocSize: tocBytes.length,
        tocDigest: 'sha256:' + createHash('sha256').update(tocBytes).digest('hex'),
        compression: toc.compression,
        frameSize: toc.frameSize,
      },
    };
  }

  /** Closes the file without finishing (error paths). */
  async abort(): Promise<void> {
    await this.fh?.close().catch(() => undefined);
    this.fh = undefined;
  }
}

const ZERO_BLOCK = Buffer.alloc(BLOCK_SIZE);
