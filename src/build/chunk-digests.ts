/**
 * The sha256 of each chunk of a file as its bytes stream past (convert hashes a lower layer's bodies
 * while it spools them, so the build need not read them again to deduplicate).
 */
import { createHash, type Hash } from 'node:crypto';
import { isZero } from './builder.js';

export class ChunkDigests {
  private hash: Hash = createHash('sha256');
  private fill = 0;
  private zero = true;
  private readonly digests: (string | null)[] = [];

  constructor(private readonly chunkSize: number) {}

  update(piece: Buffer): void {
    let at = 0;
    while (at < piece.length) {
      const n = Math.min(piece.length - at, this.chunkSize - this.fill);
      const part = piece.subarray(at, at + n);
      this.hash.update(part);
      if (this.zero && !isZero(part)) this.zero = false;
      this.fill += n;
      at += n;
      if (this.fill === this.chunkSize) this.cut();
    }
  }

  /** One entry per chunk, in order: its digest, or null for a chunk of zeros (stored as a hole). */
  finish(): (string | null)[] {
    if (this.fill > 0) this.cut();
    return this.digests;
  }

  private cut(): void {
    const digest = this.hash.digest('hex');
    this.digests.push(this.zero ? null : digest);
    this.hash = createHash('sha256');
    this.fill = 0;
    this.zero = true;
  }
}
