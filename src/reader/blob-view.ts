/**
 * Verified frame access over a fetcher: BlobView reads any range of a blob's uncompressed view
 * through verified frames (CLI check/export, tests).
 */
import { open } from 'node:fs/promises';
import { FormatError } from '../util/errors.js';
import type { BlobFetcher, FetchOptions } from '../fetch/types.js';
import { decodeFrame } from '../format/image/frames.js';
import type { BlobDescriptor, BlobToc } from '../format/image/types.js';

/** Fetches and verifies frame `index` of a blob. */
export async function fetchFrame(fetcher: BlobFetcher, blob: BlobDescriptor, toc: BlobToc, index: number, options: FetchOptions = {}): Promise<Buffer> {
  const frame = toc.frames[index];
  if (frame === undefined) throw new FormatError(`frame ${index} does not exist`, { blob: blob.digest });
  const stored = await fetcher.fetchRange(blob.digest, { offset: frame.compressedOffset, length: frame.compressedSize }, options);
  return decodeFrame(stored, frame, toc, { blob: blob.digest, index });
}

/** Random reads of a blob's uncompressed view, through verified frames, with a small frame cache. */
export class BlobView {
  private readonly cache = new Map<number, Promise<Buffer>>();

  constructor(
    private readonly fetcher: BlobFetcher,
    readonly blob: BlobDescriptor,
    readonly toc: BlobToc,
    private readonly maxCachedFrames = 8,
  ) {}

  private frame(index: number): Promise<Buffer> {
    let p = this.cache.get(index);
    if (p) {
      this.cache.delete(index);
      this.cache.set(index, p);
      return p;
    }
    p = fetchFrame(this.fetcher, this.blob, this.toc, index);
    p.catch(() => this.cache.delete(index));
    this.cache.set(index, p);
    while (this.cache.size > this.maxCachedFrames) this.cache.delete(this.cache.keys().next().value as number);
    return p;
  }

  /** Bytes [offset, offset+length) of the uncompressed view; throws outside it. */
  async read(offset: number, length: number): Promise<Buffer> {
    if (offset < 0 || length < 0 || offset + length > this.toc.uncompressedSize) {
      throw new FormatError(`read [${offset}, +${length}) outside the ${this.toc.uncompressedSize}-byte blob view`, { blob: this.blob.digest });
    }
    const out = Buffer.allocUnsafe(length);
    let at = 0;
    while (at < length) {
      const pos = offset + at;
      const index = Math.floor(pos / this.toc.frameSize);
      const frame = await this.frame(index);
      const inFrame = pos - this.toc.frames[index]!.uncompressedOffset;
      const n = Math.min(length - at, frame.length - inFrame);
      frame.copy(out, at, inFrame, inFrame + n);
      at += n;
    }
    return out;
  }
}

/** Writes a blob's uncompressed view to a local file, verifying every frame (tests, fsck, loop mounts). */
export async function materializeBlob(fetcher: BlobFetcher, blob: BlobDescriptor, toc: BlobToc, path: string): Promise<void> {
  const fh = await open(path, 'w');
  try {
    for (let i = 0; i < toc.frames.length; i++) {
      const raw = await fetchFrame(fetcher, blob, toc, i);
      await fh.write(raw, 0, raw.length, toc.frames[i]!.uncompressedOffset);
    }
    await fh.truncate(toc.uncompressedSize);
  } finally {
    await fh.close();
  }
}
