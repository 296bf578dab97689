/**
 * A standard OCI image layout directory (image-spec image-layout.md): `oci-layout`, `index.json`,
 * `blobs/sha256/<hex>`. Names, references and index checks; reading and writing the directory live
 * in src/fetch/read-layout.ts and src/build/write-layout.ts.
 */
import { join } from 'node:path';
import { FormatError, NotFoundError, UsageError } from '../../util/errors.js';
import { MEDIA_TYPE_OCI_MANIFEST } from './media-types.js';
import { checkDigest, parseDescriptor, type OciDescriptor } from './manifest.js';

export const OCI_LAYOUT_FILE = 'oci-layout';
export const OCI_LAYOUT_VERSION = '1.0.0';
export const ANNOTATION_REF_NAME = 'org.opencontainers.image.ref.name';

export interface OciIndex {
  schemaVersion: 2;
  mediaType?: string;
  manifests: OciDescriptor[];
  annotations?: Record<string, string>;
}

/**
 * `oci:PATH[:TAG]` → path and optional tag (a tag never contains '/'). An empty path or tag is a
 * mistake (`oci:` alone, `oci:dir:`), not the current directory or the default tag.
 */
export function parseOciRef(ref: string): { path: string; tag?: string } {
  const rest = ref.startsWith('oci:') ? ref.slice(4) : ref;
  const colon = rest.lastIndexOf(':');
  const tagged = colon >= 0 && !rest.slice(colon + 1).includes('/');
  const path = tagged ? rest.slice(0, colon) : rest;
  const tag = tagged ? rest.slice(colon + 1) : undefined;
  if (path.length === 0) throw new UsageError(`"${ref}" names no layout directory (oci:PATH[:TAG])`);
  if (tag === '') throw new UsageError(`"${ref}" has an empty tag after the last ':' (oci:PATH[:TAG])`);
  return tag === undefined ? { path } : { path, tag };
}

export function blobPath(dir: string, digest: string): string {
  checkDigest(digest, (what) => {
    throw new FormatError(what, { path: dir });
  }, 'blob');
  return join(dir, 'blobs', 'sha256', digest.slice('sha256:'.length));
}

export function parseIndexObject(index: Record<string, unknown>, fail: (what: string) => never): OciIndex {
  if (index.schemaVersion !== 2) fail(`index schemaVersion ${JSON.stringify(index.schemaVersion)} is not 2`);
  if (!Array.isArray(index.manifests)) fail('index has no manifests array');
  const out: OciIndex = { schemaVersion: 2, manifests: (index.manifests as unknown[]).map((d, i) => parseDescriptor(d, fail, `index entry ${i}`)) };
  if (typeof index.mediaType === 'string') out.mediaType = index.mediaType;
  return out;
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
