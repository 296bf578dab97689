/**
 * `ondemand check`: every digest from the manifest down — bootstrap, TOCs, every frame (fetched,
 * decompressed, hashed), each blob's stored digest and blob id — then a walk reading every file.
 */
import { createHash } from 'node:crypto';
import { IntegrityError } from '../util/errors.js';
import { decodeFrame } from '../format/image/frames.js';
import type { ResolvedImage } from '../resolve/types.js';
import { countTree, openImage, type TreeCounts } from './open-image.js';

export interface CheckReport {
  frames: number;
  storedBytes: number;
  uncompressedBytes: number;
  tree: TreeCounts;
  /** File bytes read through the erofs reader (holes skipped). */
  bytesRead: number;
}

const READ_PIECE = 4 << 20;

export async function checkImage(resolved: ResolvedImage): Promise<CheckReport> {
  const { image, fetcher } = resolved;
  const opened = await openImage(resolved);
  const report: CheckReport = { frames: 0, storedBytes: 0, uncompressedBytes: 0, tree: countTree(opened.reader), bytesRead: 0 };
  for (const [i, blob] of image.blobs.entries()) {
    const toc = opened.tocs[i]!;
    const viewHash = createHash('sha256');
    for (const [fi, frame] of toc.frames.entries()) {
      const stored = await fetcher.fetchRange(blob.digest, { offset: frame.compressedOffset, length: frame.compressedSize });
      const raw = await decodeFrame(stored, frame, toc, { blob: blob.digest, index: fi });
      viewHash.update(raw);
      report.frames++;
      report.uncompressedBytes += raw.length;
    }
    if (viewHash.digest('hex') !== blob.blobId) throw new IntegrityError('blob id does not match the frames', { image: image.ref, blob: blob.digest });
    const storedHash = createHash('sha256');
    for (let at = 0; at < blob.size; at += READ_PIECE) {
      storedHash.update(await fetcher.fetchRange(blob.digest, { offset: at, length: Math.min(READ_PIECE, blob.size - at) }));
    }
    const storedDigest = 'sha256:' + storedHash.digest('hex');
    if (storedDigest !== blob.digest) throw new IntegrityError(`stored blob digest mismatch: got ${storedDigest}`, { image: image.ref, blob: blob.digest });
    report.storedBytes += blob.size;
  }
  const { reader, devices } = opened;
  const seen = new Set<number>();
  for (const e of reader.walk()) {
    if (e.kind === 'symlink') reader.readlink(e.nid);
    reader.xattrs(e.nid);
    if (e.kind !== 'file' || seen.has(e.nid)) continue;
    seen.add(e.nid);
    for (const ext of reader.fileExtents(e.nid)) {
      if (ext.hole) continue;
      for (let at = 0; at < ext.length; at += READ_PIECE) {
        const len = Math.min(READ_PIECE, ext.length - at);
        const got = await reader.readFile(e.nid, ext.fileOffset + at, len, devices);
        report.bytesRead += got.length;
      }
    }
  }
  return report;
}
