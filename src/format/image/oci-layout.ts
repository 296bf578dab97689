/**
 * A standard OCI image layout directory (image-spec image-layout.md): `oci-layout`, `index.json`,
 * `blobs/sha256/<hex>`. Writes are atomic (temp file + rename); reads check what they parse.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FormatError, NotFoundError, systemCode } from '../../util/errors.js';
import { MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_OCI_MANIFEST } from './media-types.js';
import { checkDigest, parseDescriptor, parseJsonObject, type OciDescriptor } from './manifest.js';

export const OCI_LAYOUT_FILE = 'oci-layout';
export const OCI_LAYOUT_VERSION = '1.0.0';
export const ANNOTATION_REF_NAME = 'org.opencontainers.image.ref.name';

export interface OciIndex {
  schemaVersion: 2;
  mediaType?: string;
  manifests: OciDescriptor[];
  annotations?: Record<string, string>;
}

/** `oci:PATH[:TAG]` → path and optional tag (a tag never contains '/'). */
export function parseOciRef(ref: string): { path: string; tag?: string } {
  const rest = ref.startsWith('oci:') ? ref.slice(4) : ref;
  const colon = rest.lastIndexOf(':');
  if (colon > 0 && !rest.slice(colon + 1).includes('/')) {
    const tag = rest.slice(colon + 1);
    return tag.length > 0 ? { path: rest.slice(0, colon), tag } : { path: rest.slice(0, colon) };
  }
  return { path: rest };
}

export function blobPath(dir: string, digest: string): string {
  checkDigest(digest, (what) => {
    throw new FormatError(what, { path: dir });
  }, 'blob');
  return join(dir, 'blobs', 'sha256', digest.slice('sha256:'.length));
}

/** Creates the layout skeleton if missing (keeps an existing index.json). */
export async function initLayout(dir: string): Promise<void> {
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
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

/** Reads and checks `oci-layout` and `index.json`. */
export async function readIndex(dir: string): Promise<OciIndex> {
  const fail = (what: string): never => {
    throw new FormatError(`bad OCI layout: ${what}`, { path: dir });
  };
  const layout = parseJsonObject(await readLayoutFile(dir, OCI_LAYOUT_FILE), fail, OCI_LAYOUT_FILE);
  if (layout.imageLayoutVersion !== OCI_LAYOUT_VERSION) fail(`imageLayoutVersion ${JSON.stringify(layout.imageLayoutVersion)} is not ${OCI_LAYOUT_VERSION}`);
  const index = parseJsonObject(await readLayoutFile(dir, 'index.json'), fail, 'index.json');
  return parseIndexObject(index, fail);
}

export function parseIndexObject(index: Record<string, unknown>, fail: (what: string) => never): OciIndex {
  if (index.schemaVersion !== 2) fail(`index schemaVersion ${JSON.stringify(index.schemaVersion)} is not 2`);
  if (!Array.isArray(index.manifests)) fail('index has no manifests array');
  const out: OciIndex = { schemaVersion: 2, manifests: (index.manifests as unknown[]).map((d, i) => parseDescriptor(d, fail, `index entry ${i}`)) };
  if (typeof index.mediaType === 'string') out.mediaType = index.mediaType;
  return out;
}

async function readLayoutFile(dir: string, name: string): Promise<Buffer> {
  try {
    return await readFile(join(dir, name));
  } catch (err) {
    if (systemCode(err) === 'ENOENT') throw new NotFoundError(`not an OCI image layout: ${name} missing`, { path: dir });
    throw err;
  }
}

/**
 * The index entry for `tag`: by ref name; without a tag, the only entry (or the one tagged `latest`).
 */
export function selectManifest(index: OciIndex, tag: string | undefined, where: string): OciDescriptor {
  if (tag !== undefined) {
    const hit = index.manifests.find((m) => m.annotations?.[ANNOTATION_REF_NAME] === tag);
    if (!hit) throw new NotFoundError(`tag ${tag} not found`, { image: where });
    return hit;
  }
  if (index.manifests.length === 1) return index.manifests[0]!;
  const latest = index.manifests.find((m) => m.annotations?.[ANNOTATION_REF_NAME] === 'latest');
  if (latest) return latest;
  throw new NotFoundError(index.manifests.length === 0 ? 'the layout holds no image' : 'the layout holds several images: name a tag', { image: where });
}

export function isManifestType(mediaType: string): boolean {
  return mediaType === MEDIA_TYPE_OCI_MANIFEST;
}
