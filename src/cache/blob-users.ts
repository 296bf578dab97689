/**
 * Who is using one cached blob, and so keeps it from eviction: mounts (pins, each with the fetcher it
 * opened the blob with), leases (someone reads the data file itself, or the kernel does for them), and
 * openers that have not pinned or used it yet. Also which opener's source serves the blob's fetches.
 */
import type { BlobFetcher } from '../fetch/types.js';
import type { BlobSource } from './fetch-jobs.js';

export class BlobUsers {
  pins = 0;
  private leases = 0;
  /** openBlob calls whose opener has not pinned, leased or used the blob yet (see holdForOpener). */
  private openHolds = 0;
  /** When those holds lapse (clock ms), for an opener that never comes back. */
  private openHoldUntil = 0;
  /** The source each opener's fetcher brought. */
  private readonly opened = new Map<BlobFetcher, BlobSource>();
  /** Sources of the pins holding a fetcher, oldest first; a source may stand more than once. */
  private readonly users: BlobSource[] = [];

  /** `source` the blob's fetches use now; `setSource` switches it (its fetcher's last pin went). */
  constructor(private readonly source: () => BlobSource, private readonly setSource: (s: BlobSource) => void, private readonly now: () => number) {}

  /** An opener brought `source` (it serves from now on: the blob calls setSource itself). */
  opener(source: BlobSource): void {
    this.opened.set(source.fetcher, source);
  }

  /** See CachedBlob.pin. */
  pin(fetcher?: BlobFetcher): () => void {
    this.pins++;
    this.used();
    const user = fetcher !== undefined ? this.opened.get(fetcher) : undefined;
    if (user) this.users.push(user);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.pins--;
      if (!user) return;
      this.users.splice(this.users.lastIndexOf(user), 1);
      if (this.users.includes(user)) return;
      this.opened.delete(user.fetcher);
      // Its fetcher is about to close: the newest remaining user's source serves from now on.
      const next = this.users.at(-1);
      if (this.source() === user && next) this.setSource(next);
    };
  }

  /** See CachedBlob.lease. */
  lease(): () => void {
    this.leases++;
    this.used();
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.leases--;
    };
  }

  /** An opener is about to get the blob: held for `ms` or until it pins, leases or uses it. */
  holdForOpener(ms: number): void {
    this.openHolds++;
    this.openHoldUntil = Math.max(this.openHoldUntil, this.now() + ms);
  }

  /** The blob was read or prefetched: its openers are done waiting. */
  usedByAll(): void {
    this.openHolds = 0;
  }

  /** True while a pin, a lease or an opener not yet back keeps the blob. */
  holding(): boolean {
    return this.pins > 0 || this.leases > 0 || this.openHeld();
  }

  private used(): void {
    if (this.openHolds > 0) this.openHolds--;
  }

  private openHeld(): boolean {
    if (this.openHolds === 0) return false;
    if (this.now() < this.openHoldUntil) return true;
    this.openHolds = 0;
    return false;
  }
}
