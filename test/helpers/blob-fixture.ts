/**
 * A tiny ondemand blob for tests: deterministic content cut into frames (compressed or not), the TOC
 * appended after the frames (as `convert` lays it out), its descriptor, and an in-memory counting fetcher.
 * Reusable by every area's tests (cache, FUSE blobs, cachefiles).
 */
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { encodeToc } from '../../src/format/image/toc.js';
import type { BlobDescriptor, BlobToc, Compression, FrameEntry } from '../../src/format/image/types.js';
import type { BlobFetcher, ByteRange, FetchOptions } from '../../src/fetch/types.js';
import { FetchError, NotFoundError } from '../../src/util/errors.js';

export interface BlobFixtureOptions {
  /** Uncompressed size of the blob view. */
  size: number;
  /** Uncompressed bytes per frame (a multiple of 4096). Default 64 KiB. */
  frameSize?: number;
  compression?: Compression;
  /** Seed of the deterministic content. Default 1. */
  seed?: number;
}

/** An in-memory fetcher that records every request (for "fetched exactly once" assertions). */
export class MemoryFetcher implements BlobFetcher {
  readonly source: string;
  /** Every fetchRange call, in order. */
  readonly ranges: ByteRange[] = [];
  bytesFetched = 0;
  blobFetches = 0;
  private readonly blobs = new Map<string, Buffer>();

  constructor(blobs: Record<string, Buffer> = {}, source = 'memory') {
    this.source = source;
    for (const [digest, bytes] of Object.entries(blobs)) this.blobs.set(digest, bytes);
  }

  add(digest: string, bytes: Buffer): void {
    this.blobs.set(digest, bytes);
  }

  get requests(): number {
    return this.ranges.length;
  }

  reset(): void {
    this.ranges.length = 0;
    this.bytesFetched = 0;
    this.blobFetches = 0;
  }

  async fetchRange(digest: string, range: ByteRange, options: FetchOptions = {}): Promise<Buffer> {
    options.signal?.throwIfAborted();
    const blob = this.lookup(digest);
    if (range.offset < 0 || range.length < 0 || range.offset + range.length > blob.length) {
      throw new FetchError(`range [${range.offset}, +${range.length}) outside blob of ${blob.length} bytes`, { blob: digest });
    }
    this.ranges.push({ ...range });
    this.bytesFetched += range.length;
    return Buffer.from(blob.subarray(range.offset, range.offset + range.length));
  }

  async fetchBlob(digest: string, options: FetchOptions = {}): Promise<Buffer> {
    options.signal?.throwIfAborted();
    this.blobFetches++;
    return Buffer.from(this.lookup(digest));
  }

  async close(): Promise<void> {}

  private lookup(digest: string): Buffer {
    const blob = this.blobs.get(digest);
    if (!blob) throw new NotFoundError(`no blob ${digest} in ${this.source}`, { blob: digest });
    return blob;
  }
}

export interface BlobFixture {
  toc: BlobToc;
  descriptor: BlobDescriptor;
  /** The stored blob: frames then the TOC. */
  stored: Buffer;
  /** The uncompressed blob view. */
  uncompressed: Buffer;
  /** In-memory, counting fetcher serving `stored` under `descriptor.digest`. */
  fetcher: MemoryFetcher;
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Deterministic, partly compressible content: runs of text-like bytes mixed with random bytes. */
export function fixtureContent(size: number, seed = 1): Buffer {
  const buf = Buffer.allocUnsafe(size);
  let x = (seed * 0x9e3779b1) >>> 0 || 1;
  const next = (): number => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
  for (let at = 0; at < size; at += 64) {
    const n = Math.min(64, size - at);
    if (next() & 1) {
      for (let i = 0; i < n; i++) buf[at + i] = next() & 0xff;
    } else {
      const c = 0x61 + (next() % 26);
      for (let i = 0; i < n; i++) buf[at + i] = c + (i % 4);
    }
  }
  return buf;
}

export function makeBlobFixture(options: BlobFixtureOptions): BlobFixture {
  const frameSize = options.frameSize ?? 64 * 1024;
  const compression = options.compression ?? 'gzip';
  const uncompressed = fixtureContent(options.size, options.seed ?? 1);
  const parts: Buffer[] = [];
  const frames: FrameEntry[] = [];
  let stored = 0;
  for (let off = 0; off < options.size; off += frameSize) {
    const raw = uncompressed.subarray(off, Math.min(off + frameSize, options.size));
    const bytes = compression === 'gzip' ? gzipSync(raw) : Buffer.from(raw);
    frames.push({
      uncompressedOffset: off,
      uncompressedSize: raw.length,
      compressedOffset: stored,
      compressedSize: bytes.length,
      digest: sha256(raw),
    });
    parts.push(bytes);
    stored += bytes.length;
  }
  const toc: BlobToc = { blobId: sha256(uncompressed), uncompressedSize: options.size, frameSize, compression, frames };
  const tocBytes = encodeToc(toc);
  const storedBlob = Buffer.concat([...parts, tocBytes]);
  const descriptor: BlobDescriptor = {
    digest: 'sha256:' + sha256(storedBlob),
    size: storedBlob.length,
    blobId: toc.blobId,
    uncompressedSize: options.size,
    tocOffset: stored,
    tocSize: tocBytes.length,
    tocDigest: 'sha256:' + sha256(tocBytes),
    compression,
    frameSize,
  };
  const fetcher = new MemoryFetcher({ [descriptor.digest]: storedBlob });
  return { toc, descriptor, stored: storedBlob, uncompressed, fetcher };
}
