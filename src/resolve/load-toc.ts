/** Fetches a blob's TOC with one range request and checks it against the digest the manifest anchors. */
import { createHash } from 'node:crypto';
import { IntegrityError } from '../util/errors.js';
import type { BlobFetcher, FetchOptions } from '../fetch/types.js';
import { decodeToc } from '../format/image/toc.js';
import type { BlobDescriptor, BlobToc } from '../format/image/types.js';

export async function loadToc(fetcher: BlobFetcher, blob: BlobDescriptor, options: FetchOptions = {}): Promise<BlobToc> {
  const bytes = await fetcher.fetchRange(blob.digest, { offset: blob.tocOffset, length: blob.tocSize }, options);
  const actual = 'sha256:' + createHash('sha256').update(bytes).digest('hex');
  if (actual !== blob.tocDigest) {
    throw new IntegrityError(`table of contents digest mismatch: expected ${blob.tocDigest}, got ${actual}`, { blob: blob.digest });
  }
  const toc = decodeToc(bytes, { blob: blob.digest, storedSize: blob.tocOffset });
  if (toc.blobId !== blob.blobId || toc.uncompressedSize !== blob.uncompressedSize) {
    throw new IntegrityError('table of contents does not describe the blob the manifest names', { blob: blob.digest });
  }
  return toc;
}
