/**
 * Each cached blob keeps its table of contents next to its files (<id>.toc: the encoded TOC and a
 * sha256 of it), so `cache verify` can re-hash frames without the image or the network. Written when
 * a blob is opened and the stored copy differs; a damaged copy reads as missing.
 */
import { createHash } from 'node:crypto';
import { closeSync, ftruncateSync, writeSync } from 'node:fs';
import { decodeToc, encodeToc } from '../format/image/toc.js';
import type { BlobToc } from '../format/image/types.js';
import { readWhole } from './file-io.js';
import { openCacheFile } from './safe-files.js';

const SUM = 32;

function encodeStored(toc: BlobToc): Buffer {
  const body = encodeToc(toc);
  return Buffer.concat([body, createHash('sha256').update(body).digest()]);
}

/** Stores `toc` at `path` unless the same bytes are there already. */
export function storeToc(path: string, toc: BlobToc): void {
  const fd = openCacheFile(path, 'table of contents', { create: true });
  try {
    const want = encodeStored(toc);
    if (readWhole(fd).equals(want)) return;
    ftruncateSync(fd, 0);
    let done = 0;
    while (done < want.length) done += writeSync(fd, want, done, want.length - done, done);
  } finally {
    closeSync(fd);
  }
}

/** The TOC stored at `path`, or undefined when missing or damaged. */
export function readStoredToc(path: string): BlobToc | undefined {
  const fd = openCacheFile(path, 'table of contents', { write: false });
  if (fd === undefined) return undefined;
  try {
    const buf = readWhole(fd);
    if (buf.length <= SUM) return undefined;
    const body = buf.subarray(0, buf.length - SUM);
    if (!createHash('sha256').update(body).digest().equals(buf.subarray(buf.length - SUM))) return undefined;
    try {
      return decodeToc(body);
    } catch {
      return undefined;
    }
  } finally {
    closeSync(fd);
  }
}
