/**
 * The registry backend of BlobFetcher: stored blob bytes of one repository, through the registry
 * client (auth, retries, resumption, mirrors). Whole blobs are verified; ranges are verified by the
 * cache against the TOC's frame digests.
 */
import type { Readable } from 'node:stream';
import type { BlobFetcher, ByteRange, FetchOptions } from './types.js';
import { RegistryClient, type RegistryClientOptions } from '../registry/client.js';

export interface RegistryFetcherOptions {
  /** Longest time one fetchRange/fetchBlob may take, ms (retries included). */
  deadlineMs?: number;
  /** Close a client passed in when the fetcher closes (one made from options always is). */
  closeClient?: boolean;
}

/**
 * Read-ahead requests of 4 MiB: Debian's docker-registry spends ~2 ms of CPU on each range request,
 * so 1 MiB ones left a cold reader CPU-bound on 2 vCPUs (8 concurrent readers 175 → 276 MiB/s, a
 * sequential one 210 → 314 MiB/s; bench/RESULTS.md).
 */
const READ_AHEAD_REQUEST_BYTES = 4 * 1024 * 1024;

export class RegistryFetcher implements BlobFetcher {
  readonly source: string;
  readonly readAheadRequestBytes = READ_AHEAD_REQUEST_BYTES;
  readonly client: RegistryClient;
  private readonly ownsClient: boolean;

  /** Uses `client`, or makes one from client options. */
  constructor(
    client: RegistryClient | RegistryClientOptions,
    readonly repository: string,
    private readonly options: RegistryFetcherOptions = {},
  ) {
    this.ownsClient = !(client instanceof RegistryClient) || options.closeClient === true;
    this.client = client instanceof RegistryClient ? client : new RegistryClient(client);
    this.source = `registry ${this.client.registry}/${repository}`;
  }

  private op(options?: FetchOptions): { signal?: AbortSignal; deadlineMs?: number } {
    const o: { signal?: AbortSignal; deadlineMs?: number } = {};
    if (options?.signal) o.signal = options.signal;
    if (this.options.deadlineMs !== undefined) o.deadlineMs = this.options.deadlineMs;
    return o;
  }

  fetchRange(digest: string, range: ByteRange, options?: FetchOptions): Promise<Buffer> {
    return this.client.getBlobRange(this.repository, digest, range, this.op(options));
  }

  fetchRanges(digest: string, ranges: ByteRange[], options?: FetchOptions): Promise<Buffer[]> {
    return this.client.getBlobRanges(this.repository, digest, ranges, this.op(options));
  }

  fetchBlob(digest: string, options?: FetchOptions): Promise<Buffer> {
    return this.client.getBlob(this.repository, digest, this.op(options));
  }

  /** A whole blob as a verified stream (source layers for convert). */
  openBlob(digest: string, options?: FetchOptions): Readable {
    return this.client.openBlobStream(this.repository, digest, this.op(options));
  }

  async close(): Promise<void> {
    if (this.ownsClient) await this.client.close();
  }
}
