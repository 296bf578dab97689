/**
 * Test helper: an ondemand image in an OCI layout → a real kernel erofs mount. Every blob's frames
 * are decoded (and verified) into a flat file of its uncompressed view, attached read-only to a
 * loop device, and the bootstrap is mounted with `-o device=` for each, in device order.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { decodeFrame } from '../../src/format/image/frames.js';
import { parseManifest } from '../../src/format/image/manifest.js';
import { blobPath, selectManifest } from '../../src/format/image/oci-layout.js';
import { readIndex } from '../../src/fetch/read-layout.js';
import { decodeToc } from '../../src/format/image/toc.js';
import type { OndemandImage } from '../../src/format/image/types.js';

export interface MountedImage {
  dir: string;
  image: OndemandImage;
  unmount: () => void;
}

export async function mountLayoutImage(layout: string, tag: string, workDir: string): Promise<MountedImage> {
  const index = await readIndex(layout);
  const entry = selectManifest(index, tag, layout);
  const image = parseManifest(readFileSync(blobPath(layout, entry.digest)), { ref: `${layout}:${tag}`, manifestDigest: entry.digest });
  mkdirSync(workDir, { recursive: true });
  const bootstrap = join(workDir, 'bootstrap.erofs');
  writeFileSync(bootstrap, gunzipSync(readFileSync(blobPath(layout, image.bootstrap.digest))));
  const loops: string[] = [];
  const mnt = join(workDir, 'mnt');
  mkdirSync(mnt, { recursive: true });
  let mounted = false;
  const unmount = (): void => {
    if (mounted) execFileSync('umount', [mnt]);
    mounted = false;
    for (const l of loops.splice(0)) execFileSync('losetup', ['-d', l]);
  };
  try {
    for (const [i, blob] of image.blobs.entries()) {
      const stored = readFileSync(blobPath(layout, blob.digest));
      const toc = decodeToc(stored.subarray(blob.tocOffset, blob.tocOffset + blob.tocSize), { blob: blob.digest, storedSize: stored.length });
      const parts: Buffer[] = [];
      for (const [j, f] of toc.frames.entries()) {
        parts.push(await decodeFrame(stored.subarray(f.compressedOffset, f.compressedOffset + f.compressedSize), f, toc, { blob: blob.digest, index: j }));
      }
      const view = join(workDir, `blob-${i}.view`);
      writeFileSync(view, Buffer.concat(parts));
      loops.push(execFileSync('losetup', ['-f', '--show', '-r', view], { encoding: 'utf8' }).trim());
    }
    const opts = ['ro', ...loops.map((l) => `device=${l}`)].join(',');
    execFileSync('mount', ['-t', 'erofs', '-o', opts, bootstrap, mnt]);
    mounted = true;
  } catch (err) {
    unmount();
    throw err;
  }
  return { dir: mnt, image, unmount };
}
