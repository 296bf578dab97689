/**
 * From a reference to one image manifest: fetch it, and when it is an index (or Docker manifest
 * list) pick the entry for the wanted platform and fetch that.
 */
import { FormatError } from '../util/errors.js';
import { INDEX_MEDIA_TYPES, MANIFEST_MEDIA_TYPES, parseImageIndex, parseImageManifest, type FetchedManifest, type ImageManifest } from '../registry/manifest.js';
import { hostPlatform, parsePlatform, selectPlatform, type Platform } from '../registry/platform.js';
import { formatReference, manifestReference, type ImageReference } from '../registry/reference.js';

export interface RegistryImageManifest {
  manifest: ImageManifest;
  /** The platform manifest as fetched (bytes and digest). */
  fetched: FetchedManifest;
  /** The index the manifest was chosen from, if the reference named one. */
  index?: FetchedManifest;
  platform?: Platform;
}

/** A manifest (or index) by tag or digest, from wherever the caller keeps them. */
export type ManifestGetter = (reference: string) => Promise<FetchedManifest>;

/** The image manifest `ref` names, for `platform` when it names an index, from any source of manifests. */
export async function selectImageManifest(get: ManifestGetter, ref: ImageReference, options: { platform?: string } = {}): Promise<RegistryImageManifest> {
  const name = formatReference(ref);
  const top = await get(manifestReference(ref));
  if (MANIFEST_MEDIA_TYPES.has(top.mediaType)) {
    return { manifest: parseImageManifest(top.bytes, top.mediaType, name), fetched: top };
  }
  if (!INDEX_MEDIA_TYPES.has(top.mediaType)) {
    throw new FormatError(`${name} has a manifest of unsupported media type "${top.mediaType}"`, { image: name });
  }
  const index = parseImageIndex(top.bytes, top.mediaType, name);
  const wanted = options.platform !== undefined ? parsePlatform(options.platform) : hostPlatform();
  const entry = selectPlatform(index.manifests, wanted, name);
  const fetched = await get(entry.digest);
  if (!MANIFEST_MEDIA_TYPES.has(fetched.mediaType)) {
    throw new FormatError(`${name}: the ${entry.platform ? `${entry.platform.os}/${entry.platform.architecture}` : ''} entry is a ${fetched.mediaType}, not an image manifest`, { image: name });
  }
  const out: RegistryImageManifest = { manifest: parseImageManifest(fetched.bytes, fetched.mediaType, name), fetched, index: top };
  if (entry.platform) out.platform = entry.platform;
  return out;
}
