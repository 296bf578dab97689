/**
 * A small synthetic ondemand image for registry tests: data blobs of uncompressed frames plus their
 * TOC, a gzip "bootstrap" (random bytes: resolution does not parse erofs), and the OCI manifest.
 */
import { createHash, randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { encodeToc } from '../../src/format/image/toc.js';
import { ANNOTATION, MEDIA_TYPE_OCI_CONFIG, MEDIA_TYPE_OCI_MANIFEST, MEDIA_TYPE_ONDEMAND_BLOB, MEDIA_TYPE_ONDEMAND_BOOTSTRAP } from '../../src/format/image/media-types.js';
import type { BlobToc } from '../../src/format/image/types.js';

export const sha256hex = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
export const sha256 = (b: Buffer): string => 'sha256:' + sha256hex(b);

export interface FixtureBlob {
  digest: string;
  stored: Buffer;
  /** The uncompressed view (= the frames, since compression is none). */
  view: Buffer;
  toc: BlobToc;
}

export interface FixtureImage {
  blobs: FixtureBlob[];
  bootstrap: Buffer;
  bootstrapStored: Buffer;
  config: Buffer;
  manifest: Buffer;
  manifestDigest: string;
}

export function makeBlob(viewSize: number, frameSize = 64 * 1024): FixtureBlob {
  const view = randomBytes(viewSize);
  const frames = [];
  for (let off = 0; off < viewSize; off += frameSize) {
    const size = Math.min(frameSize, viewSize - off);
    frames.push({ uncompressedOffset: off, uncompressedSize: size, compressedOffset: off, compressedSize: size, digest: sha256hex(view.subarray(off, off + size)) });
  }
  const toc: BlobToc = { blobId: sha256hex(view), uncompressedSize: viewSize, frameSize, compression: 'none', frames };
  const stored = Buffer.concat([view, encodeToc(toc)]);
  return { digest: sha256(stored), stored, view, toc };
}

export function makeImage(blobSizes: number[] = [256 * 1024, 5 * 4096]): FixtureImage {
  const blobs = blobSizes.map((s) => makeBlob(s));
  const bootstrap = randomBytes(3 * 4096);
  const bootstrapStored = gzipSync(bootstrap);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: ['/bin/sh'] }, rootfs: { type: 'layers', diff_ids: [] } }));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA_TYPE_OCI_MANIFEST,
      config: { mediaType: MEDIA_TYPE_OCI_CONFIG, digest: sha256(config), size: config.length },
      layers: [
        ...blobs.map((b) => ({
          mediaType: MEDIA_TYPE_ONDEMAND_BLOB,
          digest: b.digest,
          size: b.stored.length,
          annotations: {
            [ANNOTATION.blobId]: b.toc.blobId,
            [ANNOTATION.uncompressedSize]: String(b.toc.uncompressedSize),
            [ANNOTATION.tocOffset]: String(b.view.length),
            [ANNOTATION.tocSize]: String(b.stored.length - b.view.length),
            [ANNOTATION.tocDigest]: sha256(b.stored.subarray(b.view.length)),
            [ANNOTATION.compression]: 'none',
            [ANNOTATION.frameSize]: String(b.toc.frameSize),
          },
        })),
        {
          mediaType: MEDIA_TYPE_ONDEMAND_BOOTSTRAP,
          digest: sha256(bootstrapStored),
          size: bootstrapStored.length,
          annotations: { [ANNOTATION.bootstrapDigest]: sha256(bootstrap), [ANNOTATION.bootstrapSize]: String(bootstrap.length) },
        },
      ],
      annotations: { [ANNOTATION.chunkSize]: '4096' },
    }),
  );
  return { blobs, bootstrap, bootstrapStored, config, manifest, manifestDigest: sha256(manifest) };
}

import type { RegistryClient } from '../../src/registry/client.js';
import { pushBlob } from '../../src/registry/upload.js';

/** Pushes every blob of the fixture and its manifest under `tag`. */
export async function pushImage(client: RegistryClient, repository: string, tag: string, image: FixtureImage): Promise<void> {
  for (const b of image.blobs) await pushBlob(client, repository, b.digest, b.stored);
  await pushBlob(client, repository, sha256(image.bootstrapStored), image.bootstrapStored);
  await pushBlob(client, repository, sha256(image.config), image.config);
  await client.putManifest(repository, tag, image.manifest, MEDIA_TYPE_OCI_MANIFEST);
}
