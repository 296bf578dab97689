import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { decodeToc, encodeToc } from './toc.js';
import type { BlobToc } from './types.js';
import { FormatError } from '../../util/errors.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

function sampleToc(): BlobToc {
  return {
    blobId: sha('blob'),
    uncompressedSize: 3 * 4096 + 4096,
    frameSize: 8192,
    compression: 'gzip',
    frames: [
      { uncompressedOffset: 0, uncompressedSize: 8192, compressedOffset: 0, compressedSize: 100, digest: sha('a') },
      { uncompressedOffset: 8192, uncompressedSize: 8192, compressedOffset: 100, compressedSize: 200, digest: sha('b') },
    ],
  };
}

describe('blob TOC', () => {
  it('round-trips', () => {
    const toc = sampleToc();
    expect(decodeToc(encodeToc(toc), { storedSize: 300 })).toEqual(toc);
  });

  it('rejects truncation, bit flips and frames outside the blob with FormatError', () => {
    const bytes = encodeToc(sampleToc());
    for (let cut = 0; cut < bytes.length; cut += 7) {
      expect(() => decodeToc(bytes.subarray(0, cut))).toThrow(FormatError);
    }
    expect(() => decodeToc(bytes, { storedSize: 299 })).toThrow(/past the end/);
    for (let i = 0; i < 64; i++) {
      const flipped = Buffer.from(bytes);
      flipped[i] = (flipped[i] ?? 0) ^ 0x10;
      try {
        decodeToc(flipped, { storedSize: 300 });
      } catch (err) {
        expect(err).toBeInstanceOf(FormatError);
      }
    }
  });
});
