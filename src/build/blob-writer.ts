/**
 * Streams one data blob to disk: chunks are appended 4 KiB-aligned to the blob's uncompressed view,
 * the view is cut into frames compressed one by one, and the TOC is appended after the last frame.
 * Memory use is one frame, whatever the blob size.
 */
import { createHash, type Hash } from 'node:crypto';
import { closeSync, openSync, write as writeCb } from 'node:fs';
import { promisify } from 'node:util';
import { deflateRawSync, gzip as gzipCb } from 'node:zlib';
import { encodeToc } from '../format/image/toc.js';
import { fileWriteError } from '../util/errors.js';
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

/** Frames written to the file (by the thread pool) but not yet known to be there, at most. */
const MAX_QUEUED_WRITES = 8;

/** All of `bytes` at `position` of `fd` (the blob at `path`), on the thread pool. */
function writeAt(fd: number, path: string, bytes: Buffer, position: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const step = (at: number): void => {
      if (at >= bytes.length) return resolve();
      writeCb(fd, bytes, at, bytes.length - at, position + at, (err, n) => (err ? reject(fileWriteError(err, 'the image blob', path, position + at)) : step(at + n)));
    };
    step(0);
  });
}

export class BlobWriter {
  private fd: number | undefined;
  /**
   * The writes queued, oldest first, each chained on the one before (the file grows in order and
   * onStored hears sizes in order; a failed write fails every later one). The writer goes on hashing
   * and compressing while the disk takes them: a synchronous write held the event loop for 10 of the
   * 42 s of a 2 GiB `convert` (page-cache writeback throttling), with nothing else done meanwhile.
   */
  private readonly queuedWrites: Promise<void>[] = [];
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
      // One output chunk for the whole frame: with zlib's default 16 KiB chunks every frame was 64
      // round trips between the pool and the event loop and a concat (2 GiB of random frames: 3.7 s of
      // the main thread's 42 s in a CPU profile of `convert`; 3.5x less with one chunk).
      const chunkSize = raw.length + STORED_OVERHEAD;
      this.inFlight.push({ raw: raw.length, digest, stored: gzip(Buffer.from(raw), { level, chunkSize }) });
      if (this.inFlight.length > MAX_IN_FLIGHT) await this.writeOldest();
    } else {
      // Stored bytes = view bytes: one hash serves both (the view digest is taken from a copy at the end).
      // A copy is written: the frame buffer is refilled before the write is done.
      await this.storeFrame(Buffer.from(raw), raw.length, digest);
    }
    this.fill = 0;
  }

  private async writeOldest(): Promise<void> {
    const next = this.inFlight.shift()!;
    await this.storeFrame(await next.stored, next.raw, next.digest);
  }

  private async storeFrame(stored: Buffer, rawSize: number, digest: string): Promise<void> {
    this.write(stored);
    this.frames.push({
      uncompressedOffset: this.flushed, uncompressedSize: rawSize,
      compressedOffset: this.stored - stored.length, compressedSize: stored.length, digest,
    });
    this.flushed += rawSize;
    while (this.queuedWrites.length > MAX_QUEUED_WRITES) await this.queuedWrites.shift();
  }

  /** Queues `bytes` at the end of the file (see queuedWrites); `bytes` must not change until written. */
  private write(bytes: Buffer): void {
    this.fd ??= openSync(this.path, 'w');
    const fd = this.fd;
    const position = this.stored;
    const end = position + bytes.length;
    this.storedHash.update(bytes);
    this.stored = end;
    const written = this.lastWrite().then(async () => {
      await writeAt(fd, this.path, bytes, position);
      this.onStored?.(end);
    });
    written.catch(() => undefined); // awaited by storeFrame or finish, which see the error
    this.queuedWrites.push(written);
  }

  /** The newest write (those shifted off the queue were awaited: an empty queue has none pending). */
  private lastWrite(): Promise<void> {
    return this.queuedWrites.at(-1) ?? Promise.resolve();
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
    try {
      await this.lastWrite();
    } finally {
      this.queuedWrites.length = 0;
      if (this.fd !== undefined) closeSync(this.fd);
      this.fd = undefined;
    }
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
    await this.lastWrite().catch(() => undefined);
    this.queuedWrites.length = 0;
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

const ZERO_BLOCK = Buffer.alloc(BLOCK_SIZE);
/** What gzip adds to a frame at most: its header and trailer, and 5 bytes per stored block (of at least 16 KiB). */
const STORED_OVERHEAD = 4096;

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
