/** fuse-blobs: an image's bootstrap and blobs as FUSE files, erofs mounted on top. */
export { FuseBlobsFilesystem, BOOTSTRAP_NAME, type FuseBlobsOptions, type FuseBlobsStats } from './filesystem.js';
export { mountErofsOverFuseBlobs, unmountErofs, type ErofsArrangement, type ErofsMount, type ErofsOverFuseBlobsOptions } from './erofs-mount.js';
export { FuseBlobsMount, type FuseBlobsMountOptions, type FuseBlobsMountStats } from './mount.js';
