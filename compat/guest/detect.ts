/** Prints detectCachefilesOndemand() as JSON (compat scenarios; the daemon's `ondemand detect` calls the same function). */
import { detectCachefilesOndemand } from '../../src/transport/fscache/detect.js';

process.stdout.write(`${JSON.stringify(detectCachefilesOndemand())}\n`);
