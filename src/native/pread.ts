/**
 * pread(2) straight through koffi: the bench's random readers call it per 4 KiB read, where Node's
 * fs.readSync costs about half a microsecond of JavaScript and argument checking per call more (a hot
 * page-cache read is itself about a microsecond, so that would be what a hot random-read figure measured).
 * Raw result: bytes read, or -1 with errno() set.
 */
import { libc } from './libc.js';

export const pread = libc.func('long pread(int fd, void *buf, unsigned long count, int64_t offset)') as (
  fd: number, buf: Buffer, count: number, offset: number,
) => number;
