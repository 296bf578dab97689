/**
 * A file mapped shared (MAP_SHARED): what is stored in it lands in the file's page cache at once and
 * outlives the process, even a SIGKILL in the middle of a syscall that fills it.
 */
import koffi from 'koffi';
import { errno, libc } from './libc.js';
import { read, type ExternalPointer } from './poll.js';

const PROT_READ = 1;
const PROT_WRITE = 2;
const MAP_SHARED = 1;
const MAP_FAILED = 0xffffffffffffffffn;

const mmap = libc.func('void *mmap(void *addr, size_t length, int prot, int flags, int fd, int64_t offset)') as (
  addr: null, length: number, prot: number, flags: number, fd: number, offset: bigint,
) => ExternalPointer | null;

export interface SharedMap {
  /** The mapped bytes. */
  bytes: Buffer;
  /** read(2) of `fd` straight into the mapping (up to its length); the raw result (-1: see errno()). */
  readFrom(fd: number): number;
}

/** Maps the first `length` bytes of `fd` (which must be that long) for as long as the process lives. */
export function mapShared(fd: number, length: number): SharedMap {
  const address = mmap(null, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0n);
  if (address === null || koffi.address(address) === MAP_FAILED) throw new Error(`mmap of fd ${fd} failed: errno ${errno()}`);
  const bytes = Buffer.from(koffi.view(address, length));
  return { bytes, readFrom: (from) => read(from, address, length) };
}
