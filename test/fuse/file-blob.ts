/**
 * A test-local CachedBlob over a local file: `present` says whether the blob counts as complete
 * (passthrough allowed); every read() is counted as a fetch while it is not. The data file always
 * holds the true bytes, so passthrough of a "complete" blob reads correct data.
 */
import { readFileSync, statSync } from 'node:fs';
import type { BlobStats, CachedBlob } from '../../src/cache/types.js';
import type { BlobToc } from '../../src/format/image/types.js';

export class FileBlob implements CachedBlob {
  readonly blobId: string;
  readonly size: number;
  readonly dataPath: string;
  readonly toc: BlobToc;
  present: boolean;
  reads = 0;
  bytesRead = 0;
  private readonly data: Buffer;

  constructor(blobId: string, dataPath: string, present: boolean) {
    this.blobId = blobId;
    this.dataPath = dataPath;
    this.size = statSync(dataPath).size;
    this.data = readFileSync(dataPath);
    this.present = present;
    this.toc = { blobId, uncompressedSize: this.size, frameSize: 65536, compression: 'none', frames: [] };
  }

  async read(offset: number, length: number): Promise<Buffer> {
    this.reads++;
    const out = this.data.subarray(offset, Math.min(this.size, offset + length));
    this.bytesRead += out.length;
    return out;
  }

  async ensure(): Promise<void> {}

  isComplete(): boolean {
    return this.present;
  }

  async prefetch(): Promise<void> {
    this.present = true;
  }

  stats(): BlobStats {
    return { hits: 0, misses: this.reads, bytesFetched: this.bytesRead, requestsFetched: this.reads, mergedRequests: 0, framesPresent: 0, framesTotal: 0 };
  }

  pin(): () => void {
    return () => undefined;
  }
}
