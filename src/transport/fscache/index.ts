/** The cachefiles on-demand (erofs over fscache) transport. */
export { FscacheTransport, type FscacheImage, type FscacheStats, type TransportOptions } from './server.js';
export { blobSource, localFileSource, type FscacheSource } from './source.js';
export { mountErofsFscache, umountErofs, fscacheMountData, type FscacheMountOptions } from './mount.js';
export { openDevice, bindOndemand, tryRestore, CACHEFILES_DEVICE } from './device.js';
