/**
 * Resolves a plain erofs bootstrap file plus blob files (e.g. `mkfs.erofs --blobdev`): the image is
 * synthesized — blob id = sha256 of the file, a TOC of uncompressed frames, digests from one read.
 */
import { createHash } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import { FormatError, IntegrityError, NotFoundError, systemCode } from '../util/errors.js';
import { LocalBlobFetcher } from '../fetch/local.js';
import { ErofsReader, fromBuffer } from '../format/erofs/reader.js';
import { MEDIA_TYPE_OCI_CONFIG } from '../format/image/media-types.js';
import { makeManifest, manifestBytes } from '../format/image/manifest.js';
import { encodeToc } from '../format/image/toc.js';
import type { BlobDescriptor, BlobToc, FrameEntry, OndemandImage } from '../format/image/types.js';
import type { ResolvedImage } from './types.js';

export const PLAIN_FRAME_SIZE = 1 << 20;

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

async function readOrNotFound(path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    if (systemCode(err) === 'ENOENT') throw new NotFoundError(`no such file: ${path}`, { path });
    throw err;
  }
}

/** One pass over a blob file: whole-file digest and per-frame digests. */
export async function describeBlobFile(path: string, frameSize = PLAIN_FRAME_SIZE): Promise<{ toc: BlobToc; tocBytes: Buffer; descriptor: BlobDescriptor }> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    if (systemCode(err) === 'ENOENT') throw new NotFoundError(`no such blob file: ${path}`, { path });
    throw err;
  }
  try {
    const size = (await fh.stat()).size;
    const whole = createHash('sha256');
    const frames: FrameEntry[] = [];
    const buf = Buffer.allocUnsafe(frameSize);
    for (let off = 0; off < size; off += frameSize) {
      const len = Math.min(frameSize, size - off);
      let got = 0;
      while (got < len) {
        const { bytesRead } = await fh.read(buf, got, len - got, off + got);
        if (bytesRead === 0) throw new FormatError('blob file shrank while reading', { path });
        got += bytesRead;
      }
      const part = buf.subarray(0, len);
      whole.update(part);
      frames.push({ uncompressedOffset: off, uncompressedSize: len, compressedOffset: off, compressedSize: len, digest: sha256(part) });
    }
    const blobId = whole.digest('hex');
    const toc: BlobToc = { blobId, uncompressedSize: size, frameSize, compression: 'none', frames };
    const tocBytes = encodeToc(toc);
    const descriptor: BlobDescriptor = {
      digest: 'sha256:' + blobId, size, blobId, uncompressedSize: size,
      tocOffset: size, tocSize: tocBytes.length, tocDigest: 'sha256:' + sha256(tocBytes), compression: 'none', frameSize,
    };
    return { toc, tocBytes, descriptor };
  } finally {
    await fh.close();
  }
}

export async function resolvePlainBootstrap(ref: string, blobFiles: string[]): Promise<ResolvedImage> {
  const bootstrapPath = resolvePath(ref);
  const bootstrap = await readOrNotFound(bootstrapPath);
  const reader = ErofsReader.open(fromBuffer(bootstrap), { name: ref });
  const slots = reader.superblock.devices;
  if (slots.length !== blobFiles.length) {
    throw new FormatError(`bootstrap has ${slots.length} blob device(s) but ${blobFiles.length} blob file(s) were given`, { image: ref });
  }
  const described: { toc: BlobToc; descriptor: BlobDescriptor; path: string }[] = [];
  for (const [i, file] of blobFiles.entries()) {
    const d = await describeBlobFile(resolvePath(file));
    const tag = slots[i]!.tag;
    if (tag !== '' && /^[0-9a-f]{64}$/.test(tag) && tag !== d.descriptor.blobId) {
      throw new IntegrityError(`blob file ${file} is not device ${i + 1} of the bootstrap (tag ${tag})`, { image: ref, path: file });
    }
    described.push({ ...d, path: resolvePath(file) });
  }
  const bootstrapDigest = 'sha256:' + sha256(bootstrap);
  const emptyConfig = Buffer.from('{}');
  const image: OndemandImage = {
    ref,
    manifestDigest: '',
    chunkSize: 0,
    bootstrap: { digest: bootstrapDigest, size: bootstrap.length, uncompressedDigest: bootstrapDigest, uncompressedSize: bootstrap.length },
    blobs: described.map((d) => d.descriptor),
    config: { mediaType: MEDIA_TYPE_OCI_CONFIG, digest: 'sha256:' + sha256(emptyConfig), size: emptyConfig.length },
  };
  // A stable identity for the pair: the digest of the manifest we would have written for it.
  image.manifestDigest = 'sha256:' + sha256(manifestBytes(makeManifest({ config: image.config, blobs: image.blobs, bootstrap: image.bootstrap, chunkSize: 4096 })));
  const files = new Map<string, string>([[bootstrapDigest, bootstrapPath]]);
  for (const d of described) files.set(d.descriptor.digest, d.path);
  const fetcher = LocalBlobFetcher.forFiles(files, `bootstrap ${ref}`);
  return {
    image,
    fetcher,
    loadBootstrap: async () => {
      const now = await readOrNotFound(bootstrapPath);
      if ('sha256:' + sha256(now) !== bootstrapDigest) throw new IntegrityError('bootstrap file changed since it was resolved', { image: ref });
      return now;
    },
    loadToc: async (blob) => {
      const hit = described.find((d) => d.descriptor.digest === blob.digest);
      if (!hit) throw new NotFoundError(`blob ${blob.digest} is not part of this image`, { image: ref });
      return hit.toc;
    },
  };
}
