/** FUSE passthrough backing files: the two /dev/fuse ioctls that register and release one. Raw results. */
import { errno, ioctlBuf } from '../native/libc.js';
import { FUSE_BACKING_MAP_SIZE, FUSE_DEV_IOC_BACKING_CLOSE, FUSE_DEV_IOC_BACKING_OPEN } from './layout.js';

/** FUSE_DEV_IOC_BACKING_OPEN: registers an open file as a passthrough backing; id or -errno. */
export function fuseBackingOpen(devFd: number, backingFd: number): number {
  const map = Buffer.alloc(FUSE_BACKING_MAP_SIZE);
  map.writeInt32LE(backingFd, 0);
  const r = ioctlBuf(devFd, FUSE_DEV_IOC_BACKING_OPEN, map);
  return r < 0 ? -errno() : r;
}

/** FUSE_DEV_IOC_BACKING_CLOSE: 0 or -errno. */
export function fuseBackingClose(devFd: number, backingId: number): number {
  const id = Buffer.alloc(4);
  id.writeUInt32LE(backingId, 0);
  return ioctlBuf(devFd, FUSE_DEV_IOC_BACKING_CLOSE, id) < 0 ? -errno() : 0;
}
