/**
 * A registry reference → its image manifest, with the cache's metadata store in front of the registry:
 * - by digest: the cached manifest when there is one (no request at all), else the registry's, stored;
 * - by tag: the registry says what the tag names now (the answer is stored with the time), and only
 *   when the registry cannot be reached (connection refused, timeout, 5xx) the last resolution is
 *   used, with a warning. A 404 (the tag is gone) or an auth failure is never answered from the cache.
 */
import type { MetadataStore, TagResolution } from '../cache/types.js';
import type { RegistryClient } from '../registry/client.js';
import { manifestMediaType, type FetchedManifest } from '../registry/manifest.js';
import { formatReference, type ImageReference } from '../registry/reference.js';
import type { OperationOptions } from '../registry/send.js';
import { FetchError, errorText } from '../util/errors.js';
import { selectImageManifest, type ManifestGetter, type RegistryImageManifest } from './registry-manifest.js';
import type { ResolveWarning } from './types.js';

const SHA256 = /^sha256:[0-9a-f]{64}$/;

/** The registry could not be asked (network failure, timeout, 5xx/429 after retries), as opposed to answering no. */
export function isUnreachable(err: unknown): boolean {
  if (!(err instanceof FetchError)) return false;
  const status = err.context.status;
  return typeof status !== 'number' || status >= 500 || status === 408 || status === 429;
}

async function fromStore(store: MetadataStore, digest: string, image: string): Promise<FetchedManifest | undefined> {
  if (!SHA256.test(digest)) return undefined;
  const bytes = await store.get('manifest', digest);
  return bytes === undefined ? undefined : { mediaType: manifestMediaType(bytes, undefined, image), digest, bytes };
}

/**
 * Digests from the store first; everything the registry serves is stored. With `registry` false, a
 * manifest missing from the store fails with `missing`.
 */
function getter(client: RegistryClient, ref: ImageReference, store: MetadataStore | undefined, options: OperationOptions, offline?: { missing: unknown }): ManifestGetter {
  const image = formatReference(ref);
  return async (reference) => {
    const cached = store && SHA256.test(reference) ? await fromStore(store, reference, image) : undefined;
    if (cached) return cached;
    if (offline) throw offline.missing;
    const fetched = await client.getManifest(ref.repository, reference, options);
    if (store && SHA256.test(fetched.digest)) await store.put('manifest', fetched.digest, fetched.bytes);
    return fetched;
  };
}

export interface ManifestResolution {
  found: RegistryImageManifest;
  warnings: ResolveWarning[];
}

export async function resolveManifest(
  client: RegistryClient,
  ref: ImageReference,
  store: MetadataStore | undefined,
  options: OperationOptions & { platform?: string },
): Promise<ManifestResolution> {
  const select = { ...(options.platform !== undefined ? { platform: options.platform } : {}) };
  if (ref.digest !== undefined || !store) return { found: await selectImageManifest(getter(client, ref, store, options), ref, select), warnings: [] };
  const name = formatReference(ref);
  try {
    const found = await selectImageManifest(getter(client, ref, store, options), ref, select);
    await store.setTag(name, (found.index ?? found.fetched).digest);
    return { found, warnings: [] };
  } catch (err) {
    if (!isUnreachable(err)) throw err;
    const last = await store.tag(name);
    if (!last) throw err;
    // Everything from the store: the registry just failed, asking it again would only wait longer.
    const found = await selectImageManifest(getter(client, ref, store, options, { missing: err }), { ...ref, digest: last.digest }, select);
    return { found, warnings: [offlineWarning(last, err)] };
  }
}

function offlineWarning(last: TagResolution, err: unknown): ResolveWarning {
  return { message: `registry unreachable: using the manifest cached for ${last.reference} at ${last.resolvedAt}`, detail: errorText(err), digest: last.digest };
}
