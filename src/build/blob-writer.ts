/**
 * Streams one data blob to disk: chunks are appended 4 KiB-aligned to the blob's uncompressed view,
 * the view is cut into frames compressed one by one, and the TOC is appended after the last frame.
 * Memory use is one frame, whatever the blob size.
 */
import { createHash, type Hash } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';
import { promisify } from 'node:util';
import { deflateRawSync, gzip as gzipCb } from 'node:zlib';
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
  private fd: number | undefined;
  /** Frames being compressed on the thread pool, written in order (two cores: keep two in flight). */
  private readonly inFlight: { raw: number; digest: string; stored: Promise<Buffer> }[] = [];
  private readonly frame: Buffer;
  private fill = 0;
  /** Uncompressed bytes already flushed as frames. */
  private flushed = 0;
  private stored = 0;
  private readonly frames: FrameEntry[] = [];
  private readonly viewHash: Hash = createHash('sha256');
  private readonly storedHash: Hash = createHash('sha256');

  /** `onStored` hears the stored size after every write (the bytes are in the file by then). */
  constructor(readonly path: string, private readonly options: FrameOptions, private readonly onStored?: (stored: number) => void) {
    if (options.frameSize <= 0 || options.frameSize % BLOCK_SIZE !== 0) throw new RangeError(`frame size ${options.frameSize} is not a multiple of 4096`);
    this.frame = Buffer.alloc(options.frameSize);
  }

  /** Uncompressed size so far (always a multiple of 4096). */
  get size(): number {
    return this.flushed + this.inFlight.reduce((n, f) => n + f.raw, 0) + this.fill;
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
    if (this.options.compression === 'gzip') {
      this.viewHash.update(raw);
      // gzip works on its own copy so the frame buffer can be refilled meanwhile. A frame that does not
      // compress (already compressed or random data) goes in gzip's stored blocks: still a gzip frame
      // every reader decodes, at a memcpy's cost on both sides, instead of deflating it for nothing.
      const level = compressesWell(raw) ? this.options.gzipLevel : 0;
      this.inFlight.push({ raw: raw.length, digest, stored: gzip(Buffer.from(raw), { level }) });
      if (this.inFlight.length > MAX_IN_FLIGHT) await this.writeOldest();
    } else {
      // Stored bytes = view bytes: one hash serves both (the view digest is taken from a copy at the end).
      this.storeFrame(raw, raw.length, digest);
    }
    this.fill = 0;
  }

  private async writeOldest(): Promise<void> {
    const next = this.inFlight.shift()!;
    this.storeFrame(await next.stored, next.raw, next.digest);
  }

  private storeFrame(stored: Buffer, rawSize: number, digest: string): void {
    this.write(stored);
    this.frames.push({
      uncompressedOffset: this.flushed, uncompressedSize: rawSize,
      compressedOffset: this.stored - stored.length, compressedSize: stored.length, digest,
    });
    this.flushed += rawSize;
  }

  private write(bytes: Buffer): void {
    this.fd ??= openSync(this.path, 'w');
    let at = 0;
    while (at < bytes.length) at += writeSync(this.fd, bytes, at, bytes.length - at, this.stored + at);
    this.storedHash.update(bytes);
    this.stored += bytes.length;
    this.onStored?.(this.stored);
  }

  /** Flushes the last frame, appends the TOC, closes the file. */
  async finish(): Promise<BuiltBlob> {
    await this.flushFrame();
    while (this.inFlight.length > 0) await this.writeOldest();
    const blobId = this.options.compression === 'gzip' ? this.viewHash.digest('hex') : this.storedHash.copy().digest('hex');
    const toc: BlobToc = {
      blobId,
      uncompressedSize: this.flushed,
      frameSize: this.options.frameSize,
      compression: this.options.compression,
      frames: this.frames,
    };
    const tocBytes = encodeToc(toc);
    const tocOffset = this.stored;
    this.write(tocBytes);
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
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
    await Promise.allSettled(this.inFlight.map((f) => f.stored));
    this.inFlight.length = 0;
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

const ZERO_BLOCK = Buffer.alloc(BLOCK_SIZE);

/** Bytes sampled, at a frame's start and at its middle, to tell whether it compresses. */
const SAMPLE_BYTES = 8192;
/** A sample deflated to more than this share of its size does not compress. */
const INCOMPRESSIBLE = 0.9;

/** False when both samples of `raw` stay above INCOMPRESSIBLE at deflate level 1 (about 0.1 ms a frame). */
export function compressesWell(raw: Buffer): boolean {
  if (raw.length < 2 * SAMPLE_BYTES) return true;
  for (const at of [0, Math.floor(raw.length / 2)]) {
    const sample = raw.subarray(at, at + SAMPLE_BYTES);
    if (deflateRawSync(sample, { level: 1 }).length < sample.length * INCOMPRESSIBLE) return true;
  }
  return false;
}
const MAX_IN_FLIGHT = 2;
