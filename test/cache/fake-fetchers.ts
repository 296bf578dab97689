/** Fetchers that misbehave on purpose, wrapping another (usually a fixture's MemoryFetcher). */
import type { BlobFetcher, ByteRange, FetchOptions } from '../../src/fetch/types.js';
import { FetchError } from '../../src/util/errors.js';

/** Counts requests per call and the stored bytes asked for. */
export class CountingFetcher implements BlobFetcher {
  readonly source: string;
  readonly ranges: ByteRange[] = [];
  constructor(protected readonly inner: BlobFetcher) {
    this.source = `counting(${inner.source})`;
  }
  private begun = 0;
  private readonly beginWaiters: { n: number; resolve: () => void }[] = [];
  get requests(): number {
    return this.ranges.length;
  }
  /** Resolves once `n` range requests have begun (before any delay a subclass adds): a test waits for that state, not for time. */
  started(n: number): Promise<void> {
    if (this.begun >= n) return Promise.resolve();
    return new Promise((resolve) => this.beginWaiters.push({ n, resolve }));
  }
  protected begin(): void {
    this.begun++;
    for (const w of this.beginWaiters.filter((w) => this.begun >= w.n)) {
      this.beginWaiters.splice(this.beginWaiters.indexOf(w), 1);
      w.resolve();
    }
  }
  fetchRange(digest: string, range: ByteRange, options?: FetchOptions): Promise<Buffer> {
    this.begin();
    return this.counted(digest, range, options);
  }
  protected async counted(digest: string, range: ByteRange, options?: FetchOptions): Promise<Buffer> {
    this.ranges.push({ ...range });
    return this.inner.fetchRange(digest, range, options);
  }
  fetchBlob(digest: string, options?: FetchOptions): Promise<Buffer> {
    return this.inner.fetchBlob(digest, options);
  }
  async close(): Promise<void> {}
}

/** Delays every range request by `delayMs` (and tracks how many run at once). */
export class SlowFetcher extends CountingFetcher {
  inFlight = 0;
  maxInFlight = 0;
  constructor(inner: BlobFetcher, private readonly delayMs: number) {
    super(inner);
  }
  override async fetchRange(digest: string, range: ByteRange, options?: FetchOptions): Promise<Buffer> {
    this.begin();
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      await new Promise((r) => setTimeout(r, this.delayMs));
      return await this.counted(digest, range, options);
    } finally {
      this.inFlight--;
    }
  }
}

/** Flips a byte in every response while `corrupt` is true. */
export class CorruptingFetcher extends CountingFetcher {
  corrupt = true;
  override async fetchRange(digest: string, range: ByteRange, options?: FetchOptions): Promise<Buffer> {
    const bytes = await super.fetchRange(digest, range, options);
    if (this.corrupt && bytes.length > 0) {
      const at = Math.floor(bytes.length / 2);
      bytes[at] = (bytes[at] as number) ^ 0x55;
    }
    return bytes;
  }
}

/** Throws FetchError while `failing` is true. */
export class FailingFetcher extends CountingFetcher {
  failing = true;
  override async fetchRange(digest: string, range: ByteRange, options?: FetchOptions): Promise<Buffer> {
    if (this.failing) {
      this.ranges.push({ ...range });
      throw new FetchError('simulated network failure', { blob: digest, offset: range.offset, length: range.length });
    }
    return super.fetchRange(digest, range, options);
  }
}
