/** The FUSE kernel protocol on /dev/fuse, in TypeScript: sessions, the mounted connection, the filesystem seam. */
export { FuseSession, errnoOf, type FuseSessionOptions } from './session.js';
export { mountDevice, setReadAhead, abortFuseConnection } from './connection.js';
export type {
  DirEntry, FastReadSource, FuseAttr, FuseConnectionParams, FuseFilesystem, FuseSessionStats, FuseStatfs, OpenResult, RequestContext,
} from './types.js';
