/**
 * Time as the cache sees it: last-use times, idle close, the prefetch throttle and the periodic
 * chores. Injected so tests can move time themselves instead of sleeping.
 */
export interface CacheClock {
  /** Wall-clock ms since the epoch (last-use times, persisted in maps). */
  now(): number;
  /** Monotonic ms (bandwidth throttle). */
  monotonic(): number;
  /** Resolves after `ms`. */
  sleep(ms: number): Promise<void>;
  /**
   * Calls `tick` every `ms` until the returned stop function is called, without keeping the process
   * alive. A tick handles its own errors; the promise only tells a test when its work is done.
   */
  every(ms: number, tick: () => Promise<void>): () => void;
}

export const systemClock: CacheClock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  every(ms, tick) {
    const timer = setInterval(() => void tick(), ms);
    timer.unref();
    return () => clearInterval(timer);
  },
};
