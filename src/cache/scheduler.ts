/**
 * Fetch slots shared by every blob of a cache: a fixed number of concurrent range requests, handed
 * out demand-first so on-demand reads always overtake prefetch; and a token bucket for the
 * prefetch bandwidth cap.
 */
import { systemClock, type CacheClock } from './clock.js';
import type { BandwidthBudget } from './types.js';

export type Priority = 'demand' | 'prefetch';

interface Waiter {
  priority: Priority;
  grant: () => void;
}

export class FetchSlots {
  private active = 0;
  private readonly demand: Waiter[] = [];
  private readonly prefetch: Waiter[] = [];

  constructor(private readonly limit: number) {}

  /** Resolves when a slot is free; the returned ticket can be promoted to demand while it waits. */
  acquire(priority: Priority): { granted: Promise<void>; promote: () => void } {
    if (this.active < this.limit && this.demand.length === 0 && (priority === 'demand' || this.prefetch.length === 0)) {
      this.active++;
      return { granted: Promise.resolve(), promote: () => {} };
    }
    let waiter!: Waiter;
    const granted = new Promise<void>((resolve) => {
      waiter = { priority, grant: resolve };
    });
    (priority === 'demand' ? this.demand : this.prefetch).push(waiter);
    const promote = (): void => {
      const i = this.prefetch.indexOf(waiter);
      if (i < 0) return;
      this.prefetch.splice(i, 1);
      waiter.priority = 'demand';
      this.demand.push(waiter);
    };
    return { granted, promote };
  }

  release(): void {
    const next = this.demand.shift() ?? this.prefetch.shift();
    if (next) next.grant();
    else this.active--;
  }
}

/**
 * Token bucket: `take(n)` waits until n bytes fit under `bytesPerSecond`. Bursts are capped at a
 * tenth of a second's worth; a request bigger than that goes once the bucket is full.
 */
export class Throttle {
  private readonly capacity: number;
  private tokens: number;
  private last: number;

  constructor(private readonly bytesPerSecond: number, private readonly clock: CacheClock) {
    this.capacity = Math.max(1, bytesPerSecond / 10);
    this.tokens = this.capacity;
    this.last = clock.monotonic();
  }

  async take(bytes: number, signal?: AbortSignal): Promise<void> {
    for (;;) {
      signal?.throwIfAborted();
      const now = this.clock.monotonic();
      this.tokens = Math.min(this.capacity, this.tokens + ((now - this.last) / 1000) * this.bytesPerSecond);
      this.last = now;
      const need = Math.min(bytes, this.capacity);
      if (this.tokens >= need) {
        this.tokens -= bytes; // may go negative: the debt delays the next request
        return;
      }
      await this.clock.sleep(Math.max(1, ((need - this.tokens) / this.bytesPerSecond) * 1000));
    }
  }
}

/** One bandwidth budget for several prefetches (a mount's blobs share its `--prefetch-rate`). */
export function bandwidthBudget(bytesPerSecond: number, clock: CacheClock = systemClock): BandwidthBudget {
  return new Throttle(bytesPerSecond, clock);
}
