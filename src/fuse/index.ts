/** The FUSE kernel protocol on /dev/fuse, in TypeScript: sessions, mounts, the filesystem seam. */
export { FuseSession, errnoOf, type FuseSessionOptions } from './session.js';
export { FuseMount, FUSE_FSTYPE, mountDevice, setReadAhead, abortFuseConnection, type FuseMountOptions } from './mount.js';
export type {
  DirEntry, FastReadSource, FuseAttr, FuseConnectionParams, FuseFilesystem, FuseSessionStats, FuseStatfs, OpenResult, RequestContext,
} from './types.js';
