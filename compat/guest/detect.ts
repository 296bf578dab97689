/** Prints the cachefiles on-demand probe as JSON (compat scenarios; `ondemand detect` runs the same probe). */
import { detectCachefilesOndemand } from '../../src/transport/kernel-features.js';

process.stdout.write(`${JSON.stringify(detectCachefilesOndemand())}\n`);
