/**
 * The journal of events read but not yet answered, so a worker that replaces a dead one can answer
 * them: the kernel keeps such an event pending for as long as the group lives and matches a response
 * only by the event's fd number (fanotify-hsm.md §6). One slot per fd number, written by the reader
 * thread before it hands an event on and cleared by the main thread after the response; a process
 * crash leaves the file in the page cache, which is all a restart needs.
 *
 * Beside it, the batch file: the reader thread reads the group straight into a shared mapping of it,
 * so the events of the last read survive a SIGKILL that lands between the read and their slots (or
 * inside the read: the kernel has handed them over by then). Each record's state byte says what
 * became of it; one still "read" was neither answered nor journaled.
 */
import { closeSync, constants, fstatSync, ftruncateSync, openSync, readSync, writeSync } from 'node:fs';
import { BATCH_STATE_OFFSET, parseEvents, recordsEnd, type PendingEvent, type RawEvent } from '../../native/fanotify-events.js';

const SLOT = 64;
const MAGIC = 0x4f44464e; // "NFDO"
const CLEAR = Buffer.alloc(4);
/** Fd numbers past the journal's highest slot that a sweep also answers (events read, not yet journaled). */
const SWEEP_MARGIN = 256;
const SWEEP_MIN = 1024;
/** The reader thread's read size: the batch file is this long. */
export const BATCH_BYTES = 64 * 1024;
/** What became of an event of the last read (its record's state byte, which the kernel leaves 0). */
export const BatchState = { read: 0, answered: 1, journaled: 2 } as const;
/** The file of an event known only from the batch: its range is known, its file is not (see server.ts). */
export const UNKNOWN_FILE = '';

function readAll(fd: number): Buffer {
  const size = fstatSync(fd).size;
  const buf = Buffer.alloc(size);
  let got = 0;
  while (got < size) {
    const n = readSync(fd, buf, got, size - got, got);
    if (n <= 0) break;
    got += n;
  }
  return buf.subarray(0, got);
}

export class EventJournal {
  private constructor(readonly fd: number, readonly batchFd: number) {}

  static open(path: string): EventJournal {
    const flags = constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW;
    const fd = openSync(path, flags, 0o600);
    const batchFd = openSync(`${path}.batch`, flags, 0o600);
    if (fstatSync(batchFd).size < BATCH_BYTES) ftruncateSync(batchFd, BATCH_BYTES);
    return new EventJournal(fd, batchFd);
  }

  /** The same journal, from fds opened by another thread of this process. */
  static fromFds(fd: number, batchFd: number): EventJournal {
    return new EventJournal(fd, batchFd);
  }

  record(ev: PendingEvent): void {
    const slot = Buffer.alloc(SLOT);
    slot.writeUInt32LE(MAGIC, 0);
    slot.writeInt32LE(ev.pid, 4);
    slot.writeDoubleLE(ev.offset, 8);
    slot.writeDoubleLE(ev.count, 16);
    slot.writeUInt8(ev.ranged ? 1 : 0, 24);
    const file = Buffer.from(ev.file);
    slot.writeUInt8(Math.min(file.length, SLOT - 26), 25);
    file.copy(slot, 26, 0, SLOT - 26);
    writeSync(this.fd, slot, 0, SLOT, ev.fd * SLOT);
  }

  /** Forgets every slot and the last batch (a new group, or every pending event answered: nothing recorded can be pending). */
  reset(): void {
    ftruncateSync(this.fd, 0);
    ftruncateSync(this.batchFd, 0);
    ftruncateSync(this.batchFd, BATCH_BYTES);
  }

  clear(eventFd: number): void {
    writeSync(this.fd, CLEAR, 0, 4, eventFd * SLOT);
  }

  /** Every event recorded and not cleared (by a worker that died before answering it). */
  entries(): PendingEvent[] {
    const buf = readAll(this.fd);
    const out: PendingEvent[] = [];
    for (let at = 0; at + SLOT <= buf.length; at += SLOT) {
      if (buf.readUInt32LE(at) !== MAGIC) continue;
      const len = buf.readUInt8(at + 25);
      out.push({
        fd: at / SLOT, pid: buf.readInt32LE(at + 4), offset: buf.readDoubleLE(at + 8), count: buf.readDoubleLE(at + 16),
        ranged: buf.readUInt8(at + 24) === 1, file: buf.toString('utf8', at + 26, at + 26 + len),
      });
    }
    return out;
  }

  /** Events of the last read that the dead reader neither answered nor journaled. */
  unhandled(): RawEvent[] {
    const buf = readAll(this.batchFd);
    return parseEvents(buf, recordsEnd(buf)).filter((ev) => buf.readUInt8(ev.record + BATCH_STATE_OFFSET) === BatchState.read);
  }

  /**
   * The highest fd number an event a dead worker read may have, journaled or not (one read in the
   * instant before it was recorded): whoever answers what it left tries every number up to this.
   */
  sweepLimit(): number {
    return Math.max(SWEEP_MIN, Math.floor(fstatSync(this.fd).size / SLOT) + SWEEP_MARGIN);
  }

  close(): void {
    closeSync(this.fd);
    closeSync(this.batchFd);
  }
}
