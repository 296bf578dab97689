/**
 * The ondemand image as every reader sees it: one bootstrap, data blobs in erofs device-table order,
 * and per blob a table of contents (TOC) of independently compressed frames.
 */
export type Compression = 'none' | 'gzip';
export const COMPRESSIONS: readonly Compression[] = ['none', 'gzip'];

/** One frame of a blob: the unit of fetching, caching, verification and prefetch. */
export interface FrameEntry {
  /** Offset in the uncompressed blob view. Frames tile the view in order, without gaps. */
  uncompressedOffset: number;
  uncompressedSize: number;
  /** Offset and length of the frame's stored bytes inside the registry blob. */
  compressedOffset: number;
  compressedSize: number;
  /** sha256 hex of the uncompressed bytes. */
  digest: string;
}

export interface BlobToc {
  /** sha256 hex of the whole uncompressed view. */
  blobId: string;
  uncompressedSize: number;
  frameSize: number;
  compression: Compression;
  frames: FrameEntry[];
}

/** A data blob as the manifest describes it (enough to fetch its TOC with one range request). */
export interface BlobDescriptor {
  /** `sha256:<hex>` of the stored blob in the registry / OCI layout. */
  digest: string;
  /** Size of the stored blob. */
  size: number;
  blobId: string;
  uncompressedSize: number;
  tocOffset: number;
  tocSize: number;
  /** `sha256:<hex>` of the TOC bytes. */
  tocDigest: string;
  compression: Compression;
  frameSize: number;
}

export interface BootstrapDescriptor {
  /** `sha256:<hex>` of the stored (gzip) bootstrap. */
  digest: string;
  size: number;
  /** `sha256:<hex>` of the uncompressed erofs bootstrap. */
  uncompressedDigest: string;
  uncompressedSize: number;
}

/** A resolved ondemand image. `blobs[i]` is erofs device i+1. */
export interface OndemandImage {
  /** Human-readable reference the user gave. */
  ref: string;
  /** `sha256:<hex>` of the manifest. */
  manifestDigest: string;
  chunkSize: number;
  bootstrap: BootstrapDescriptor;
  blobs: BlobDescriptor[];
  /** Config descriptor, passed through from the source image. */
  config: { mediaType: string; digest: string; size: number };
  /** The start-up trace the image carries, as its manifest annotation holds it (decoded where used: a bad one is only a hint lost). */
  prefetchTrace?: string;
}
