/** Writing an OCI image layout directory. Writes are atomic (temp file + rename). */
import { createHash } from 'node:crypto';
import { rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { systemCode } from '../util/errors.js';
import { MEDIA_TYPE_OCI_INDEX } from '../format/image/media-types.js';
import type { OciDescriptor } from '../format/image/manifest.js';
import { ANNOTATION_REF_NAME, OCI_LAYOUT_FILE, OCI_LAYOUT_VERSION, blobPath, type OciIndex } from '../format/image/oci-layout.js';
import { readIndex } from '../fetch/read-layout.js';
import { makeDirs } from '../util/make-dirs.js';

/** Creates the layout skeleton if missing (keeps an existing index.json). */
export async function initLayout(dir: string): Promise<void> {
  makeDirs(join(dir, 'blobs', 'sha256'));
  await atomicWrite(join(dir, OCI_LAYOUT_FILE), Buffer.from(JSON.stringify({ imageLayoutVersion: OCI_LAYOUT_VERSION })));
  try {
    await stat(join(dir, 'index.json'));
  } catch (err) {
    if (systemCode(err) !== 'ENOENT') throw err;
    await writeIndex(dir, { schemaVersion: 2, mediaType: MEDIA_TYPE_OCI_INDEX, manifests: [] });
  }
}

/** Stores bytes as a blob; returns its descriptor. */
export async function putBlobBytes(dir: string, bytes: Buffer, mediaType: string): Promise<OciDescriptor> {
  const digest = 'sha256:' + createHash('sha256').update(bytes).digest('hex');
  await atomicWrite(blobPath(dir, digest), bytes);
  return { mediaType, digest, size: bytes.length };
}

/** Moves an already-hashed file into the layout as blob `digest`. */
export async function putBlobFile(dir: string, file: string, digest: string): Promise<string> {
  const dst = blobPath(dir, digest);
  await rename(file, dst);
  return dst;
}

/** Points `tag` at `manifest` in index.json (replacing whatever the tag named before). */
export async function tagManifest(dir: string, manifest: OciDescriptor, tag: string): Promise<void> {
  const index = await readIndex(dir);
  index.manifests = index.manifests.filter((m) => m.annotations?.[ANNOTATION_REF_NAME] !== tag);
  index.manifests.push({ ...manifest, annotations: { ...manifest.annotations, [ANNOTATION_REF_NAME]: tag } });
  await writeIndex(dir, index);
}

async function writeIndex(dir: string, index: OciIndex): Promise<void> {
  await atomicWrite(join(dir, 'index.json'), Buffer.from(JSON.stringify(index)));
}

async function atomicWrite(path: string, bytes: Buffer): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, bytes);
  await rename(tmp, path);
}
