/**
 * A CacheClock the test moves itself: sleeps and interval ticks happen in virtual time, when the test
 * says, so no test waits on the wall clock for the cache's timers.
 */
import type { CacheClock } from '../../src/cache/clock.js';

interface Due {
  at: number;
  fire: () => Promise<void>;
}

interface Interval {
  ms: number;
  next: number;
  tick: () => Promise<void>;
  stopped: boolean;
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export class ManualClock implements CacheClock {
  private time: number;
  private readonly sleepers: { at: number; wake: () => void }[] = [];
  private readonly intervals: Interval[] = [];
  private onSleep: (() => void) | undefined;

  /** Starts in the past by default, so last-use times stay before the real now. */
  constructor(start = Date.now() - 3_600_000) {
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  monotonic(): number {
    return this.time;
  }

  sleep(ms: number): Promise<void> {
    return new Promise((wake) => {
      this.sleepers.push({ at: this.time + ms, wake });
      this.onSleep?.();
    });
  }

  every(ms: number, tick: () => Promise<void>): () => void {
    const interval: Interval = { ms, next: this.time + ms, tick, stopped: false };
    this.intervals.push(interval);
    return () => {
      interval.stopped = true;
    };
  }

  /** Moves time on by `ms`, waking sleepers and running interval ticks in order as they fall due; resolves when their work is done. */
  async advance(ms: number): Promise<void> {
    const end = this.time + ms;
    for (let due = this.nextDue(true); due && due.at <= end; due = this.nextDue(true)) {
      this.time = due.at;
      await due.fire();
    }
    this.time = end;
  }

  /**
   * Settles `p`, moving time straight to the next sleeper's deadline whenever the code sleeps (as if
   * everything else were instant). Interval ticks do not run here.
   */
  async drive<T>(p: Promise<T>): Promise<T> {
    let settled = false;
    const done = p.then(() => (settled = true), () => (settled = true));
    while (!settled) {
      const due = this.nextDue(false);
      if (due) {
        this.time = Math.max(this.time, due.at);
        await due.fire();
        continue;
      }
      await Promise.race([done, new Promise<void>((resolve) => (this.onSleep = resolve))]);
      this.onSleep = undefined;
    }
    return p;
  }

  /** The earliest sleeper (or interval tick), taken off its queue. */
  private nextDue(withIntervals: boolean): Due | undefined {
    let sleeper = -1;
    this.sleepers.forEach((s, i) => {
      if (sleeper < 0 || s.at < (this.sleepers[sleeper] as { at: number }).at) sleeper = i;
    });
    const live = withIntervals ? this.intervals.filter((iv) => !iv.stopped) : [];
    const interval = live.reduce<Interval | undefined>((a, b) => (a && a.next <= b.next ? a : b), undefined);
    const s = this.sleepers[sleeper];
    if (interval && (!s || interval.next < s.at)) {
      const at = interval.next;
      interval.next += interval.ms;
      return { at, fire: () => interval.tick() };
    }
    if (!s) return undefined;
    this.sleepers.splice(sleeper, 1);
    return {
      at: s.at,
      fire: () => {
        s.wake();
        return turn(); // let the woken code run (and perhaps sleep again) before the next deadline
      },
    };
  }
}
