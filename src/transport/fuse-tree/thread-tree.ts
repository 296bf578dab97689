/**
 * Runs on the FUSE reader thread (FuseFilesystem.threadTree): the same FuseTreeFilesystem, over the
 * same bootstrap, without blobs — the thread answers only metadata, so every attribute it gives is the
 * one the main thread would give.
 */
import type { MetadataTree } from '../../fuse/types.js';
import { FuseTreeFilesystem } from './filesystem.js';

export function createMetadataTree(args: { bootstrapPath: string; image?: string }): MetadataTree {
  return new FuseTreeFilesystem({ bootstrapPath: args.bootstrapPath, blobs: [], ...(args.image !== undefined ? { image: args.image } : {}) });
}
