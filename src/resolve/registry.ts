/**
 * The registry branch of resolution: `HOST[:PORT]/REPO[:TAG][@DIGEST]` → the ondemand image, a
 * fetcher for its blobs, and loaders for the bootstrap and TOCs. With a metadata store, manifests and
 * TOCs come from it when it has them (./manifest-cache.ts), and go into it when fetched.
 */
import { createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { FormatError, IntegrityError } from '../util/errors.js';
import { RegistryFetcher } from '../fetch/registry.js';
import { parseManifest } from '../format/image/manifest.js';
import { MEDIA_TYPE_ONDEMAND_BOOTSTRAP } from '../format/image/media-types.js';
import { RegistryClient, type RegistryClientOptions } from '../registry/client.js';
import type { ImageManifest } from '../registry/manifest.js';
import { formatReference, parseReference } from '../registry/reference.js';
import { loadToc } from './load-toc.js';
import { resolveManifest } from './manifest-cache.js';
import type { ResolveOptions, ResolvedImage } from './types.js';

/** `upload`: how pushes are cut (convert's destination); reads need none of it. */
export function clientForReference(registry: string, options: ResolveOptions, upload: Pick<RegistryClientOptions, 'uploadChunkSize' | 'monolithicUploadLimit'> = {}): RegistryClient {
  const credentials = options.credentials !== undefined
    ? { resolved: options.credentials }
    : { ...(options.creds !== undefined ? { creds: options.creds } : {}), ...(options.dockerConfig !== undefined ? { dockerConfig: options.dockerConfig } : {}) };
  return new RegistryClient({
    registry,
    insecure: options.insecure ?? false,
    credentials,
    mirrors: options.mirrors ?? [],
    ...(options.retries !== undefined ? { retry: { attempts: options.retries + 1 } } : {}),
    ...upload,
  });
}

/** Gunzips and verifies a stored bootstrap; the size limit stops a gzip bomb. */
export function unpackBootstrap(stored: Buffer, expected: { uncompressedDigest: string; uncompressedSize: number }, image: string): Buffer {
  let raw: Buffer;
  try {
    raw = gunzipSync(stored, { maxOutputLength: Math.max(1, expected.uncompressedSize) });
  } catch (err) {
    const tooBig = err instanceof RangeError || (err instanceof Error && /maxOutputLength|buffer/i.test(err.message));
    throw new FormatError(tooBig ? `bootstrap of ${image} inflates beyond its declared ${expected.uncompressedSize} bytes` : `bootstrap of ${image} is not valid gzip`, { image });
  }
  if (raw.length !== expected.uncompressedSize) {
    throw new IntegrityError(`bootstrap of ${image} is ${raw.length} bytes, the manifest says ${expected.uncompressedSize}`, { image });
  }
  const digest = 'sha256:' + createHash('sha256').update(raw).digest('hex');
  if (digest !== expected.uncompressedDigest) throw new IntegrityError(`bootstrap of ${image} has digest ${digest}, expected ${expected.uncompressedDigest}`, { image });
  return raw;
}

/** An ordinary image gets a message that says what to do, before the strict format checks. */
function requireOndemandImage(manifest: ImageManifest, name: string): void {
  if (manifest.layers.some((l) => l.mediaType === MEDIA_TYPE_ONDEMAND_BOOTSTRAP)) return;
  const types = [...new Set(manifest.layers.map((l) => l.mediaType))].join(', ') || 'no layers';
  throw new FormatError(`${name} is not an ondemand image (its layers are ${types}); convert it with \`ondemand convert\``, { image: name });
}

export async function resolveRegistryImage(refText: string, options: ResolveOptions = {}): Promise<ResolvedImage> {
  const named = parseReference(refText);
  const name = formatReference(named);
  const ref = options.manifestDigest ? { ...named, tag: undefined, digest: options.manifestDigest } : named;
  const client = clientForReference(ref.registry, options);
  try {
    const { found, warnings } = await resolveManifest(client, ref, options.metadata, options.platform !== undefined ? { platform: options.platform } : {});
    requireOndemandImage(found.manifest, name);
    const image = parseManifest(found.fetched.bytes, { ref: name, manifestDigest: found.fetched.digest });
    const fetcher = new RegistryFetcher(client, ref.repository, { closeClient: true, ...(options.fetchDeadlineMs !== undefined ? { deadlineMs: options.fetchDeadlineMs } : {}) });
    const metadata = options.metadata;
    return {
      image,
      fetcher,
      ...(warnings.length > 0 ? { warnings } : {}),
      loadBootstrap: async () => unpackBootstrap(await fetcher.fetchBlob(image.bootstrap.digest), image.bootstrap, name),
      loadToc: (blob) => loadToc(fetcher, blob, {}, metadata),
    };
  } catch (err) {
    await client.close();
    throw err;
  }
}
