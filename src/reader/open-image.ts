/**
 * A resolved image opened for user-space reading: the erofs reader over the verified bootstrap, and
 * a DeviceReader that serves blob devices 1..N through verified frames (BlobView).
 */
import { FormatError, IntegrityError } from '../util/errors.js';
import { ErofsReader, fromBuffer, type DeviceReader } from '../format/erofs/reader.js';
import type { BlobToc } from '../format/image/types.js';
import type { ResolvedImage } from '../resolve/types.js';
import { BlobView } from './blob-view.js';

export interface OpenedImage {
  reader: ErofsReader;
  bootstrap: Buffer;
  tocs: BlobToc[];
  views: BlobView[];
  devices: DeviceReader;
}

export async function openImage(resolved: ResolvedImage): Promise<OpenedImage> {
  const { image } = resolved;
  const bootstrap = await resolved.loadBootstrap();
  const reader = ErofsReader.open(fromBuffer(bootstrap), { name: image.ref });
  const slots = reader.superblock.devices;
  if (slots.length !== image.blobs.length) {
    throw new FormatError(`bootstrap has ${slots.length} blob devices, the manifest ${image.blobs.length} blobs`, { image: image.ref });
  }
  const tocs: BlobToc[] = [];
  const views: BlobView[] = [];
  for (const [i, blob] of image.blobs.entries()) {
    const slot = slots[i]!;
    if (slot.tag !== '' && slot.tag !== blob.blobId) {
      throw new IntegrityError(`device ${i + 1} tag ${slot.tag} is not blob ${blob.blobId}`, { image: image.ref, blob: blob.digest });
    }
    if (slot.blocks * 4096 > blob.uncompressedSize) {
      throw new FormatError(`device ${i + 1} claims ${slot.blocks} blocks, blob has ${blob.uncompressedSize} bytes`, { image: image.ref, blob: blob.digest });
    }
    const toc = await resolved.loadToc(blob);
    tocs.push(toc);
    views.push(new BlobView(resolved.fetcher, blob, toc));
  }
  const devices: DeviceReader = {
    read: (device, offset, length) => {
      const view = views[device - 1];
      if (!view) return Promise.reject(new FormatError(`no blob device ${device}`, { image: image.ref }));
      return view.read(offset, length);
    },
  };
  return { reader, bootstrap, tocs, views, devices };
}

export interface TreeCounts {
  files: number;
  dirs: number;
  symlinks: number;
  others: number;
  /** Paths that are extra links to an already counted file. */
  hardLinks: number;
  fileBytes: number;
}

export function countTree(reader: ErofsReader): TreeCounts {
  const c: TreeCounts = { files: 0, dirs: 0, symlinks: 0, others: 0, hardLinks: 0, fileBytes: 0 };
  const seen = new Set<number>();
  for (const e of reader.walk()) {
    if (e.kind === 'dir') c.dirs++;
    else if (e.kind === 'symlink') c.symlinks++;
    else if (e.kind === 'file') {
      if (seen.has(e.nid)) {
        c.hardLinks++;
        continue;
      }
      seen.add(e.nid);
      c.files++;
      c.fileBytes += reader.inode(e.nid).size;
    } else c.others++;
  }
  return c;
}
