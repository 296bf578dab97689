/**
 * Turning what the user typed (REF) into an image and a fetcher:
 * - `oci:PATH[:TAG]` — an OCI image layout directory;
 * - `HOST[:PORT]/REPO[:TAG][@DIGEST]` — a registry (./registry.ts, over src/registry's client);
 * - a plain path to an erofs bootstrap, with `blobs` for its extra devices (e.g. made by mkfs.erofs).
 */
import type { MetadataStore } from '../cache/types.js';
import type { BlobFetcher } from '../fetch/types.js';
import type { BlobDescriptor, BlobToc, OndemandImage } from '../format/image/types.js';
import type { Credentials } from '../registry/credentials.js';

export interface ResolveOptions {
  /** Blob files for a plain bootstrap path, in device-table order. */
  blobs?: string[];
  /** `os/arch[/variant]`; default the host's. */
  platform?: string;
  /** Allow plain HTTP (loopback registries). */
  insecure?: boolean;
  /** `USER:PASS` for the registry (else this process's environment and Docker config). */
  creds?: string;
  /**
   * Credentials the caller already resolved (null: anonymous): the only ones used, nothing is looked
   * up here. The daemon gets them from the CLI, so a mount uses its caller's credentials, not its own.
   */
  credentials?: Credentials | null;
  /** Where manifests, TOCs and tag resolutions are kept (registry images mount again without the registry). */
  metadata?: MetadataStore;
  /** Registry pull-through mirrors (`host[:port]` or URL), tried in order before the registry (default none). */
  mirrors?: string[];
  /** Tries after the first for a registry request that failed transiently (default: the registry client's). */
  retries?: number;
  /** The Docker config.json credentials are looked up in (default: Docker's own lookup). */
  dockerConfig?: string;
  /**
   * The manifest the image must be (`sha256:...`): a mount re-attached after a worker restart serves
   * exactly what it mounted, whatever its tag points to now.
   */
  manifestDigest?: string;
  /** Longest one fetch of the image's data may take, retries included (ms; the registry client's default otherwise). */
  fetchDeadlineMs?: number;
}

/** Something the user should know about how the image was resolved (e.g. from the cache, registry down). */
export interface ResolveWarning {
  message: string;
  /** Why (for the log). */
  detail?: string;
  /** The manifest or index digest it is about. */
  digest?: string;
}

export interface ResolvedImage {
  image: OndemandImage;
  warnings?: ResolveWarning[];
  fetcher: BlobFetcher;
  /** The uncompressed erofs bootstrap, verified against the image's digest. */
  loadBootstrap(): Promise<Buffer>;
  /** A blob's verified TOC. */
  loadToc(blob: BlobDescriptor): Promise<BlobToc>;
}
