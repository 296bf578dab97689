/** The in-flight journal: what a worker that died had read and not answered, for its successor. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BATCH_STATE_OFFSET } from '../../native/fanotify-events.js';
import { mapShared } from '../../native/shared-map.js';
import { BATCH_BYTES, BatchState, EventJournal } from './journal.js';

/** One pre-content event record as read(2) returns it: metadata (24 bytes), then a range record. */
function record(fd: number, pid: number, offset: number, count: number): Buffer {
  const b = Buffer.alloc(48);
  b.writeUInt32LE(48, 0);
  b.writeUInt8(3, 4);
  b.writeUInt16LE(24, 6);
  b.writeBigUInt64LE(0x00100000n, 8);
  b.writeInt32LE(fd, 16);
  b.writeInt32LE(pid, 20);
  b.writeUInt8(6, 24); // FAN_EVENT_INFO_TYPE_RANGE
  b.writeUInt16LE(24, 26);
  b.writeBigUInt64LE(BigInt(offset), 32);
  b.writeBigUInt64LE(BigInt(count), 40);
  return b;
}

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

  it('gives the events of the last read, written through the shared mapping, that were neither answered nor journaled', () => {
    const p = path();
    const a = EventJournal.open(p);
    const batch = mapShared(a.batchFd, BATCH_BYTES);
    // An earlier, longer read, zeroed before the next (as the reader thread does): nothing of it is taken.
    Buffer.concat([record(7, 1, 0, 4096), record(8, 1, 0, 4096), record(9, 1, 0, 4096), record(10, 1, 0, 4096)]).copy(batch.bytes);
    batch.bytes.fill(0, 0, 192);
    Buffer.concat([record(20, 4242, 1 << 20, 65536), record(21, 4242, 0, 4096), record(22, 4243, 8192, 4096)]).copy(batch.bytes);
    batch.bytes.writeUInt8(BatchState.answered, 48 + BATCH_STATE_OFFSET);
    batch.bytes.writeUInt8(BatchState.journaled, 96 + BATCH_STATE_OFFSET);
    a.close();
    const b = EventJournal.open(p);
    expect(b.unhandled()).toEqual([{ record: 0, fd: 20, pid: 4242, offset: 1 << 20, count: 65536, ranged: true, mask: 0x00100000 }]);
    b.reset();
    expect(b.unhandled()).toEqual([]);
    b.close();
  });
});
