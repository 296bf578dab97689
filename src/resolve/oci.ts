/** Resolves `oci:PATH[:TAG]`: an OCI image layout holding an ondemand image (or an index of them). */
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { gunzip as gunzipCb } from 'node:zlib';
import { FormatError, IntegrityError, NotFoundError } from '../util/errors.js';
import { LocalBlobFetcher } from '../fetch/local.js';
import type { BlobFetcher } from '../fetch/types.js';
import { MEDIA_TYPE_DOCKER_MANIFEST_LIST, MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_OCI_MANIFEST } from '../format/image/media-types.js';
import { parseJsonObject, parseManifest, type OciDescriptor } from '../format/image/manifest.js';
import { parseIndexObject, parseOciRef, selectManifest } from '../format/image/oci-layout.js';
import type { OndemandImage } from '../format/image/types.js';
import { loadToc } from './load-toc.js';
import { readIndex } from '../fetch/read-layout.js';
import type { ResolvedImage, ResolveOptions } from './types.js';

const gunzip = promisify(gunzipCb);
const MAX_MANIFEST = 4 << 20;

export async function resolveOciLayout(ref: string, options: ResolveOptions): Promise<ResolvedImage> {
  const { path, tag } = parseOciRef(ref);
  const index = await readIndex(path);
  const fetcher = LocalBlobFetcher.forOciLayout(path);
  try {
    if (options.manifestDigest) return resolvedFrom(await pinnedManifest(fetcher, options.manifestDigest, ref), fetcher);
    let desc = selectManifest(index, tag, ref);
    if (desc.mediaType === MEDIA_TYPE_OCI_INDEX || desc.mediaType === MEDIA_TYPE_DOCKER_MANIFEST_LIST) {
      desc = await selectPlatform(fetcher, desc, options.platform, ref);
    }
    if (desc.mediaType !== MEDIA_TYPE_OCI_MANIFEST) throw new FormatError(`${desc.mediaType} is not an OCI image manifest`, { image: ref });
    const manifest = await fetchManifestBytes(fetcher, desc, ref);
    const image = parseManifest(manifest, { ref, manifestDigest: desc.digest });
    return resolvedFrom(image, fetcher);
  } catch (err) {
    await fetcher.close();
    throw err;
  }
}

async function fetchManifestBytes(fetcher: BlobFetcher, desc: OciDescriptor, ref: string): Promise<Buffer> {
  if (desc.size > MAX_MANIFEST) throw new FormatError(`manifest of ${desc.size} bytes is too large`, { image: ref });
  const bytes = await fetcher.fetchBlob(desc.digest);
  if (bytes.length !== desc.size) throw new IntegrityError(`manifest is ${bytes.length} bytes, its descriptor says ${desc.size}`, { image: ref });
  return bytes;
}

/** The layout's manifest with this digest, whatever its tags name now. */
async function pinnedManifest(fetcher: BlobFetcher, digest: string, ref: string): Promise<OndemandImage> {
  const bytes = await fetcher.fetchBlob(digest);
  if (bytes.length > MAX_MANIFEST) throw new FormatError(`manifest of ${bytes.length} bytes is too large`, { image: ref });
  const actual = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  if (actual !== digest) throw new IntegrityError(`manifest ${digest} of ${ref} has digest ${actual}`, { image: ref });
  return parseManifest(bytes, { ref, manifestDigest: digest });
}

/** The host's platform in OCI terms. */
function hostPlatform(): string {
  const arch = ({ x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' } as Record<string, string>)[process.arch] ?? process.arch;
  return `linux/${arch}`;
}

async function selectPlatform(fetcher: BlobFetcher, desc: OciDescriptor, platform: string | undefined, ref: string): Promise<OciDescriptor> {
  const fail = (what: string): never => {
    throw new FormatError(`bad image index: ${what}`, { image: ref });
  };
  const index = parseIndexObject(parseJsonObject(await fetchManifestBytes(fetcher, desc, ref), fail, 'index'), fail);
  const want = platform ?? hostPlatform();
  const [os, arch, variant] = want.split('/');
  const hit = index.manifests.find((m) => m.platform?.os === os && m.platform.architecture === arch && (variant === undefined || m.platform.variant === variant));
  if (!hit) throw new NotFoundError(`no image for platform ${want}`, { image: ref });
  return hit;
}

/** The ResolvedImage of a parsed image whose stored blobs the fetcher serves. */
export function resolvedFrom(image: OndemandImage, fetcher: BlobFetcher): ResolvedImage {
  return {
    image,
    fetcher,
    loadBootstrap: async () => {
      const b = image.bootstrap;
      const stored = await fetcher.fetchBlob(b.digest);
      let raw: Buffer;
      try {
        raw = await gunzip(stored, { maxOutputLength: b.uncompressedSize + 1 });
      } catch (err) {
        throw new IntegrityError(`bootstrap does not decompress: ${(err as Error).message}`, { image: image.ref, blob: b.digest });
      }
      if (raw.length !== b.uncompressedSize) throw new IntegrityError(`bootstrap is ${raw.length} bytes, expected ${b.uncompressedSize}`, { image: image.ref });
      const digest = 'sha256:' + createHash('sha256').update(raw).digest('hex');
      if (digest !== b.uncompressedDigest) throw new IntegrityError('bootstrap digest mismatch', { image: image.ref, blob: b.digest });
      return raw;
    },
    loadToc: (blob) => loadToc(fetcher, blob),
  };
}
