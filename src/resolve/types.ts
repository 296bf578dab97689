/**
 * Turning what the user typed (REF) into an image and a fetcher:
 * - `oci:PATH[:TAG]` — an OCI image layout directory;
 * - `HOST[:PORT]/REPO[:TAG][@DIGEST]` — a registry (./registry.ts, over src/registry's client);
 * - a plain path to an erofs bootstrap, with `blobs` for its extra devices (e.g. made by mkfs.erofs).
 */
import type { BlobFetcher } from '../fetch/types.js';
import type { BlobDescriptor, BlobToc, OndemandImage } from '../format/image/types.js';

export interface ResolveOptions {
  /** Blob files for a plain bootstrap path, in device-table order. */
  blobs?: string[];
  /** `os/arch[/variant]`; default the host's. */
  platform?: string;
  /** Allow plain HTTP (loopback registries). */
  insecure?: boolean;
  /** `USER:PASS` for the registry. */
  creds?: string;
  /** Registry pull-through mirrors (`host[:port]` or URL), tried in order before the registry. */
  mirrors?: string[];
  /**
   * The manifest the image must be (`sha256:...`): a mount re-attached after a worker restart serves
   * exactly what it mounted, whatever its tag points to now.
   */
  manifestDigest?: string;
  /** Longest one fetch of the image's data may take, retries included (ms; the registry client's default otherwise). */
  fetchDeadlineMs?: number;
}

export interface ResolvedImage {
  image: OndemandImage;
  fetcher: BlobFetcher;
  /** The uncompressed erofs bootstrap, verified against the image's digest. */
  loadBootstrap(): Promise<Buffer>;
  /** A blob's verified TOC. */
  loadToc(blob: BlobDescriptor): Promise<BlobToc>;
}
