/**
 * Where stored blob bytes come from: an OCI layout directory, plain local files, or a registry.
 * A fetcher knows nothing of caches, frames or the kernel; it returns stored (compressed) bytes.
 */
export interface FetchOptions {
  signal?: AbortSignal;
}

export interface ByteRange {
  offset: number;
  length: number;
}

export interface BlobFetcher {
  /** For logs and errors: e.g. `oci:/path` or `registry 127.0.0.1:5000/debian`. */
  readonly source: string;
  /**
   * Optional: the size of read-ahead requests that suits this source (default: the cache's tuning,
   * 1 MiB). A source that costs per request (a round trip, the server's work) pays back larger ones.
   */
  readonly readAheadRequestBytes?: number;
  /** Bytes [offset, offset+length) of stored blob `digest` (`sha256:<hex>`). Exactly `length` bytes or a throw. */
  fetchRange(digest: string, range: ByteRange, options?: FetchOptions): Promise<Buffer>;
  /** The whole stored blob (manifests, configs, bootstraps). Implementations verify `digest`. */
  fetchBlob(digest: string, options?: FetchOptions): Promise<Buffer>;
  /**
   * Optional: several ranges of one blob, in the order given, in as few requests as the source allows
   * (a registry merges touching ranges and sends multi-range requests). Callers fall back to fetchRange.
   */
  fetchRanges?(digest: string, ranges: ByteRange[], options?: FetchOptions): Promise<Buffer[]>;
  /** Releases connections and files. */
  close(): Promise<void>;
}
