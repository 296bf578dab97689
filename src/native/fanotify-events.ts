/**
 * fanotify event records as read(2) returns them (a pre-content group's, with fds and ranges; a
 * notification group's reporting file handles), and what the reader thread hands the main thread.
 * Free of side effects: both sides import it.
 */
import { FAN_EVENT_INFO_TYPE_FID, FAN_EVENT_INFO_TYPE_RANGE } from './fanotify.js';

/** struct fanotify_event_metadata: event_len u32, vers u8, reserved u8, metadata_len u16, mask u64, fd s32, pid s32. */
const METADATA_SIZE = 24;
const FANOTIFY_METADATA_VERSION = 3;

/** One pre-content event: the reader wants [offset, offset+count) of the file open as `fd`. */
export interface RawEvent {
  /** The event's fd in the reading thread's fd table; its number is what the response names. */
  fd: number;
  pid: number;
  offset: number;
  count: number;
  /** False when the record has no range (an event without a position): the whole file is wanted. */
  ranged: boolean;
  /** The event mask's low 32 bits (FAN_MODIFY, FAN_Q_OVERFLOW...). */
  mask?: number;
  /** A FAN_REPORT_FID group's file: handleKey() of its file handle. */
  handle?: string;
}

/** An event the main thread serves: which file (dev:ino of the event fd) besides the range. */
export interface PendingEvent extends RawEvent {
  file: string;
}

/** `dev:ino`, the key a served file is known by (st_dev and st_ino of any fd of it). */
export function fileKey(dev: bigint | number, ino: bigint | number): string {
  return `${dev}:${ino}`;
}

/**
 * fileKey()s of the inodes a group marks, from its fdinfo text (/proc/PID/fdinfo/FD: lines
 * "fanotify ino:HEX sdev:HEX ..."). sdev is the kernel's dev_t (MAJOR << 20 | MINOR), re-encoded
 * here as stat(2) gives st_dev.
 */
export function markedFileKeys(fdinfo: string): string[] {
  const keys: string[] = [];
  for (const m of fdinfo.matchAll(/^fanotify ino:([0-9a-f]+) sdev:([0-9a-f]+) /gm)) {
    const sdev = BigInt(`0x${m[2] ?? '0'}`);
    const major = sdev >> 20n;
    const minor = sdev & 0xfffffn;
    const dev = (minor & 0xffn) | ((major & 0xfffn) << 8n) | ((minor & ~0xffn) << 12n) | ((major & ~0xfffn) << 32n);
    keys.push(fileKey(dev, BigInt(`0x${m[1] ?? '0'}`)));
  }
  return keys;
}

/** struct file_handle's type and bytes (not its length field) as hex: what a watched file is known by. */
export function handleKey(handle: Buffer): string {
  const bytes = handle.readUInt32LE(0);
  return handle.subarray(4, 8 + bytes).toString('hex');
}

/** The `reserved` byte of a record: 0 from the kernel; the reader may note there what became of the event. */
export const BATCH_STATE_OFFSET = 5;

/**
 * Where the records of a buffer that was zeroed before a read end: at the first place that holds no
 * whole record of the kernel's (the zeroes after the last one).
 */
export function recordsEnd(buf: Buffer): number {
  let end = 0;
  while (end + METADATA_SIZE <= buf.length) {
    const eventLen = buf.readUInt32LE(end);
    if (buf.readUInt8(end + 4) !== FANOTIFY_METADATA_VERSION || eventLen < METADATA_SIZE || end + eventLen > buf.length) break;
    end += eventLen;
  }
  return end;
}

/** An event as read, with where its record starts in the buffer (see BATCH_STATE_OFFSET). */
export interface ParsedEvent extends RawEvent {
  record: number;
}

/** Splits buf[0, n) into events; throws on a record the kernel would not write (wrong version, torn). */
export function parseEvents(buf: Buffer, n: number): ParsedEvent[] {
  const events: ParsedEvent[] = [];
  let at = 0;
  while (at + METADATA_SIZE <= n) {
    const eventLen = buf.readUInt32LE(at);
    const vers = buf.readUInt8(at + 4);
    const metadataLen = buf.readUInt16LE(at + 6);
    if (vers !== FANOTIFY_METADATA_VERSION || eventLen < METADATA_SIZE || at + eventLen > n || metadataLen < METADATA_SIZE) {
      throw new Error(`bad fanotify event record at byte ${at} of ${n} (version ${vers}, length ${eventLen})`);
    }
    const ev: ParsedEvent = {
      record: at, fd: buf.readInt32LE(at + 16), pid: buf.readInt32LE(at + 20), offset: 0, count: 0, ranged: false, mask: buf.readUInt32LE(at + 8),
    };
    for (let info = at + metadataLen; info + 4 <= at + eventLen;) {
      const type = buf.readUInt8(info);
      const len = buf.readUInt16LE(info + 2);
      if (len < 4) break;
      if (type === FAN_EVENT_INFO_TYPE_RANGE && len >= 24) {
        ev.offset = Number(buf.readBigUInt64LE(info + 8));
        ev.count = Number(buf.readBigUInt64LE(info + 16));
        ev.ranged = true;
      } else if (type === FAN_EVENT_INFO_TYPE_FID && len >= 20) {
        // header (4), fsid (8), then struct file_handle.
        ev.handle = handleKey(buf.subarray(info + 12, at + eventLen));
      }
      info += len;
    }
    events.push(ev);
    at += eventLen;
  }
  return events;
}
