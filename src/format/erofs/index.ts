/** The erofs format: writer (model → image) and reader (image → inodes, dirs, xattrs, extents, model). */
export { writeErofs } from './writer.js';
export {
  ErofsReader, fromBuffer, fromFile,
  type DeviceReader, type DeviceSlotInfo, type ErofsDirEntry, type ErofsInodeInfo, type ErofsLayout, type ErofsSource,
  type ErofsSuperblock, type FileExtent, type OpenOptions, type WalkEntry,
} from './reader.js';
export type * from './model.js';
