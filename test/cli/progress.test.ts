/** The progress renderer of mount --wait, convert and push/pull: terminal bar, plain lines, JSON lines. */
import { describe, expect, it } from 'vitest';
import { createProgress, type ProgressStream } from '../../src/cli/progress.js';

function capture(isTTY: boolean): ProgressStream & { text: string } {
  const s = { text: '', isTTY, write: (t: string) => { s.text += t; return true; } };
  return s;
}

describe('createProgress', () => {
  it('rewrites one bar line on a terminal, with the rate, and clears it before lines that stay', () => {
    let t = 0;
    const s = capture(true);
    const p = createProgress({ stream: s, now: () => t });
    p.bytes(0, 8 << 20, 'prefetch');
    t = 1000;
    p.bytes(4 << 20, 8 << 20, 'prefetch');
    expect(s.text).toContain('\r\x1b[Kprefetch [...............');
    expect(s.text).toContain('\r\x1b[Kprefetch [###############...............] 50% 4.0 MiB / 8.0 MiB, 4.0 MiB/s');
    p.note('layer 2/2 applied');
    expect(s.text.endsWith('\r\x1b[Klayer 2/2 applied\n')).toBe(true);
    p.bytes(8 << 20, 8 << 20, 'prefetch');
    p.done();
    expect(s.text.endsWith('\r\x1b[K')).toBe(true);
  });

  it('writes a plain line at most every 2 s elsewhere', () => {
    let t = 0;
    const s = capture(false);
    const p = createProgress({ stream: s, now: () => t });
    for (; t <= 5000; t += 500) p.bytes(t * 1000, 10_000_000);
    expect(s.text.split('\n').filter(Boolean)).toEqual([
      '0% 0.0 MiB / 9.5 MiB',
      '20% 1.9 MiB / 9.5 MiB, 1.0 MiB/s',
      '40% 3.8 MiB / 9.5 MiB, 1.0 MiB/s',
    ]);
    expect(s.text).not.toContain('\x1b');
    p.note('built 1 blob(s)');
    expect(s.text.endsWith('built 1 blob(s)\n')).toBe(true);
  });

  it('writes JSON lines with --json, never text, whatever the stream is', () => {
    let t = 0;
    const s = capture(true);
    const p = createProgress({ stream: s, json: true, now: () => t });
    p.bytes(1, 4);
    t = 100;
    p.bytes(2, 4); // within the JSON interval: skipped
    p.bytes(4, 4); // the end of a phase: always written
    p.note('text only');
    p.note('phase', { event: 'build-start', files: 3 });
    p.done({ bytes: 4, total: 4 });
    p.failed('boom');
    expect(s.text.trim().split('\n').map((l) => JSON.parse(l) as unknown)).toEqual([
      { event: 'progress', bytes: 1, total: 4 },
      { event: 'progress', bytes: 4, total: 4 },
      { event: 'build-start', files: 3 },
      { event: 'done', bytes: 4, total: 4 },
      { event: 'failed', error: 'boom' },
    ]);
  });
});
