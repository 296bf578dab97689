/** The in-flight journal: what a worker that died had read and not answered, for its successor. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { EventJournal } from './journal.js';

describe('EventJournal', () => {
  const dirs: string[] = [];
  afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }); });
  const path = (): string => {
    const d = mkdtempSync(join(tmpdir(), 'journal-'));
    dirs.push(d);
    return join(d, 'fanotify.journal');
  };

  it('keeps what was recorded and not cleared, across a reopen (a new worker)', () => {
    const p = path();
    const a = EventJournal.open(p);
    a.record({ fd: 12, pid: 4242, offset: 1 << 20, count: 131072, ranged: true, file: '2049:77' });
    a.record({ fd: 40, pid: 4243, offset: 0, count: 0, ranged: false, file: '2049:78' });
    a.record({ fd: 13, pid: 4242, offset: 5, count: 6, ranged: true, file: '2049:77' });
    a.clear(13);
    a.close();
    const b = EventJournal.open(p);
    expect(b.entries()).toEqual([
      { fd: 12, pid: 4242, offset: 1 << 20, count: 131072, ranged: true, file: '2049:77' },
      { fd: 40, pid: 4243, offset: 0, count: 0, ranged: false, file: '2049:78' },
    ]);
    expect(b.sweepLimit()).toBe(1024); // at least 1024; past the last slot (40) by 256 otherwise
    b.reset();
    expect(b.entries()).toEqual([]);
    b.close();
  });
});
