/**
 * A blob's TOC, checked against the digest the manifest anchors: from the metadata store when it has
 * it, else with one range request (and then stored).
 */
import { createHash } from 'node:crypto';
import type { MetadataStore } from '../cache/types.js';
import { IntegrityError } from '../util/errors.js';
import type { BlobFetcher, FetchOptions } from '../fetch/types.js';
import { decodeToc } from '../format/image/toc.js';
import type { BlobDescriptor, BlobToc } from '../format/image/types.js';

export async function loadToc(fetcher: BlobFetcher, blob: BlobDescriptor, options: FetchOptions = {}, store?: MetadataStore): Promise<BlobToc> {
  const stored = store && /^sha256:[0-9a-f]{64}$/.test(blob.tocDigest) ? await store.get('toc', blob.tocDigest) : undefined;
  const bytes = stored ?? (await fetcher.fetchRange(blob.digest, { offset: blob.tocOffset, length: blob.tocSize }, options));
  const actual = 'sha256:' + createHash('sha256').update(bytes).digest('hex');
  if (actual !== blob.tocDigest) {
    throw new IntegrityError(`table of contents digest mismatch: expected ${blob.tocDigest}, got ${actual}`, { blob: blob.digest });
  }
  const toc = decodeToc(bytes, { blob: blob.digest, storedSize: blob.tocOffset });
  if (toc.blobId !== blob.blobId || toc.uncompressedSize !== blob.uncompressedSize) {
    throw new IntegrityError('table of contents does not describe the blob the manifest names', { blob: blob.digest });
  }
  if (store && !stored) await store.put('toc', blob.tocDigest, bytes);
  return toc;
}
