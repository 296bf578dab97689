/**
 * A data blob as it is being written, for whoever wants its bytes before the build ends (convert's
 * overlapped upload). The builder only reports progress: it never waits for an observer.
 */

/** What a finished blob is known by. */
export interface FinishedBlob {
  digest: string;
  size: number;
}

export interface GrowingBlob {
  /** Index of the blob among the build's blobs (before empty ones are dropped). */
  readonly index: number;
  /** The work file the stored bytes are appended to. */
  readonly path: string;
  /**
   * Resolves with the number of stored bytes written to `path` once it is at least `bytes`, or with
   * the final size once the blob is complete (possibly less). Rejects when the build fails.
   */
  waitFor(bytes: number): Promise<number>;
  /** The blob's digest and size once the build keeps it; null when the build drops it (no data). Rejects when the build fails. */
  readonly done: Promise<FinishedBlob | null>;
}

/** The builder's side of a GrowingBlob: it moves `written` forward and settles the outcome. */
export class BlobProgress implements GrowingBlob {
  readonly done: Promise<FinishedBlob | null>;
  private written = 0;
  private complete = false;
  private failure: Error | undefined;
  private waiters: { bytes: number; resolve: (n: number) => void; reject: (err: unknown) => void }[] = [];
  private settle!: { resolve: (b: FinishedBlob | null) => void; reject: (err: unknown) => void };

  constructor(readonly index: number, readonly path: string) {
    this.done = new Promise((resolve, reject) => {
      this.settle = { resolve, reject };
    });
    // Nobody may be listening (no observer, or one that already gave up): a build failure is thrown by the builder itself.
    this.done.catch(() => undefined);
  }

  waitFor(bytes: number): Promise<number> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.written >= bytes || this.complete) return Promise.resolve(this.written);
    return new Promise((resolve, reject) => this.waiters.push({ bytes, resolve, reject }));
  }

  /** `total` stored bytes are now in the file (written with a synchronous write: readable by others). */
  advance(total: number): void {
    this.written = total;
    if (this.waiters.length === 0) return;
    const still: typeof this.waiters = [];
    for (const w of this.waiters) {
      if (w.bytes <= total) w.resolve(total);
      else still.push(w);
    }
    this.waiters = still;
  }

  /** The file is complete (frames and TOC): every waiter gets the final size. */
  finish(): void {
    this.complete = true;
    for (const w of this.waiters) w.resolve(this.written);
    this.waiters = [];
  }

  /** The build keeps the blob (with its digest) or drops it (null). */
  resolve(blob: FinishedBlob | null): void {
    this.settle.resolve(blob);
  }

  fail(err: unknown): void {
    this.failure = err instanceof Error ? err : new Error(`build failed: ${String(err)}`);
    for (const w of this.waiters) w.reject(this.failure);
    this.waiters = [];
    this.settle.reject(this.failure);
  }
}
