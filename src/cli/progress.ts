/**
 * Progress of long commands (mount --wait, convert, push/pull) in one style: a rewritten bar line on
 * a terminal, a plain line every few seconds otherwise, JSON lines with --json. A dozen lines of
 * ANSI: no bar library is installed here, and one is not worth a dependency.
 */

/** Where progress goes: stderr for convert/push/pull, stdout for `mount --wait --json`. */
export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
}

export interface ProgressOptions {
  stream?: ProgressStream;
  /** JSON lines instead of text (wins over the terminal check). */
  json?: boolean;
  /** Seconds between plain lines (not on a terminal, not JSON). */
  lineIntervalMs?: number;
  /** Least time between two JSON progress events (the last one of a phase is always written). */
  jsonIntervalMs?: number;
  now?: () => number;
}

export interface ProgressRenderer {
  /** Bytes of the current piece of work: `label` names it in the text forms. */
  bytes(done: number, total: number, label?: string): void;
  /** A line that stays (a phase began or ended); `event` is its JSON form (none: not written as JSON). */
  note(text: string, event?: Record<string, unknown>): void;
  /** A rewritten status line on a terminal; nothing otherwise. */
  status(text: string): void;
  done(event?: Record<string, unknown>): void;
  failed(error: string): void;
  /** Clears a bar left on the terminal. */
  end(): void;
}

const BAR_WIDTH = 30;

export function mib(n: number): string {
  return `${(n / (1 << 20)).toFixed(1)} MiB`;
}

export function createProgress(options: ProgressOptions = {}): ProgressRenderer {
  const stream = options.stream ?? process.stderr;
  const json = options.json === true;
  const tty = !json && stream.isTTY === true;
  const now = options.now ?? Date.now;
  const lineEvery = options.lineIntervalMs ?? 2_000;
  const jsonEvery = options.jsonIntervalMs ?? 500;
  let barShown = false;
  let lastWrite = -Infinity;
  // The rate is the average since the first figure of this label (a poll-to-poll rate jumps too much).
  let rateFrom: { label: string | undefined; at: number; bytes: number } | undefined;

  const clearBar = (): void => {
    if (barShown) stream.write('\r\x1b[K');
    barShown = false;
  };
  const jsonLine = (event: Record<string, unknown>): void => {
    stream.write(JSON.stringify(event) + '\n');
  };
  const rate = (label: string | undefined, done: number): string => {
    const t = now();
    if (!rateFrom || rateFrom.label !== label || done < rateFrom.bytes) rateFrom = { label, at: t, bytes: done };
    const secs = (t - rateFrom.at) / 1000;
    return secs > 0 ? `, ${mib((done - rateFrom.bytes) / secs)}/s` : '';
  };

  return {
    bytes(done, total, label) {
      const t = now();
      const finished = done >= total;
      if (json) {
        if (finished || t - lastWrite >= jsonEvery) {
          lastWrite = t;
          jsonLine({ event: 'progress', ...(label !== undefined ? { label } : {}), bytes: done, total });
        }
        return;
      }
      const pct = total > 0 ? Math.min(100, (done / total) * 100) : 100;
      const figures = `${pct.toFixed(0)}% ${mib(done)} / ${mib(total)}${rate(label, done)}`;
      const prefix = label !== undefined ? `${label} ` : '';
      if (tty) {
        const fill = Math.round((pct / 100) * BAR_WIDTH);
        stream.write(`\r\x1b[K${prefix}[${'#'.repeat(fill)}${'.'.repeat(BAR_WIDTH - fill)}] ${figures}`);
        barShown = true;
      } else if (t - lastWrite >= lineEvery) {
        lastWrite = t;
        stream.write(`${prefix}${figures}\n`);
      }
    },
    note(text, event) {
      if (json) {
        if (event) jsonLine(event);
        return;
      }
      clearBar();
      stream.write(text + '\n');
    },
    status(text) {
      if (!tty) return;
      stream.write(`\r\x1b[K${text}`);
      barShown = true;
    },
    done(event) {
      if (json) jsonLine({ event: 'done', ...event });
      else clearBar();
    },
    failed(error) {
      if (json) jsonLine({ event: 'failed', error });
      else clearBar();
    },
    end() {
      if (!json) clearBar();
    },
  };
}
