/**
 * `ondemand cache ls` lists cached blobs (read-only, works while a daemon owns the cache);
 * `ondemand cache gc [--max-size SIZE]` evicts least recently used blobs: the daemon does it when one
 * owns the cache dir (blobs of mounted images stay), else this process, under the cache lock;
 * `ondemand cache verify [IMAGE|BLOB]` re-hashes present frames (cache-verify.ts).
 */
import { resolve } from 'node:path';
import { defineCommand, out, outJson } from '../command.js';
import { formatSize, listCache, openCache } from '../../cache/index.js';
import type { GcResult } from '../../cache/types.js';
import { DaemonNotRunning, livePid, requestDaemon } from '../../daemon/client.js';
import { cliConfig } from '../config.js';
import { setting } from '../../config/resolve.js';
import { UsageError } from '../../util/errors.js';
import { cacheVerify } from './cache-verify.js';

export const cacheCommand = defineCommand({
  command: 'cache <action> [target]',
  describe: 'List (ls), trim (gc) or verify the local cache of blobs, bootstraps and image metadata',
  builder: (y) =>
    y
      .positional('action', { choices: ['ls', 'gc', 'verify'] as const, demandOption: true, describe: 'ls: list; gc: evict to --max-size; verify: re-hash present frames, drop bad ones' })
      .positional('target', { type: 'string', describe: 'verify: an IMAGE, or a BLOB id (or prefix); default all blobs' })
      .option('cache-dir', { type: 'string', describe: 'Cache directory (default cache.dir: $ONDEMAND_CACHE_DIR, the config file, /var/cache/ondemand)' })
      .option('max-size', { type: 'string', describe: 'gc: evict least recently used blobs until the cache uses at most this (e.g. 10G; default cache.max_size)' })
      .option('json', { type: 'boolean', default: false, describe: 'Print JSON' }),
  handler: async (argv) => {
    const config = cliConfig({
      'cache.dir': { flag: '--cache-dir', value: argv.cacheDir },
      'cache.max_size': { flag: '--max-size', value: argv.maxSize },
    });
    const dir = setting(config, 'cache.dir');
    if (argv.action === 'verify') return cacheVerify(dir, argv.target, argv.json, await daemonOwns(dir));
    if (argv.target !== undefined) throw new UsageError(`cache ${argv.action} takes no argument`);
    if (argv.action === 'ls') {
      if (argv.maxSize !== undefined) throw new UsageError('--max-size goes with gc, not ls');
      const listing = listCache(dir);
      if (argv.json) {
        outJson(listing);
        return;
      }
      const md = listing.metadata;
      out(`cache ${dir}: ${listing.blobs.length} blobs, ${listing.bootstraps.length} bootstraps, ${md.manifests} manifests, ${md.tocs} TOCs, ${md.tags.length} tags, ${formatSize(listing.totalBytes)} on disk`);
      if (listing.blobs.length > 0) out(['BLOB', 'SIZE', 'ON DISK', 'PRESENT', 'LAST USED'].join('\t'));
      for (const b of listing.blobs) {
        const present = b.present === undefined ? '?' : `${(b.present * 100).toFixed(1)}%`;
        const size = b.size === undefined ? '?' : formatSize(b.size);
        const last = b.lastUsed ? b.lastUsed.toISOString() : b.problem ?? '-';
        out([b.blobId.slice(0, 16), size, formatSize(b.diskBytes), present, last].join('\t'));
      }
      if (md.tags.length > 0) out(['TAG', 'DIGEST', 'RESOLVED'].join('\t'));
      for (const t of md.tags) out([t.reference, t.digest.slice(0, 19), t.resolvedAt].join('\t'));
      return;
    }
    const maxSize = setting(config, 'cache.max_size');
    if (maxSize === null) throw new UsageError('cache gc needs --max-size SIZE (e.g. --max-size 10G) or cache.max_size in the configuration');
    const res = (await daemonOwns(dir)) ? await requestDaemon({ op: 'gc', maxSize }) : await gcHere(dir, maxSize);
    if (argv.json) {
      outJson(res);
      return;
    }
    out(`evicted ${res.evictedBlobs.length} blobs and the metadata of ${res.droppedManifests?.length ?? 0} manifests, freed ${formatSize(res.freedBytes)}; cache ${dir} now uses ${formatSize(res.usageBytes)}`);
  },
});

/** Whether a running daemon owns cache dir `dir` (then only it may evict there). */
async function daemonOwns(dir: string): Promise<boolean> {
  if (livePid() === null) return false;
  try {
    return resolve((await requestDaemon({ op: 'ping' }, 5_000)).cacheDir) === resolve(dir);
  } catch (err) {
    if (err instanceof DaemonNotRunning) return false;
    throw err;
  }
}

async function gcHere(dir: string, maxSize: number): Promise<GcResult> {
  const cache = await openCache({ dir });
  try {
    return await cache.gc({ maxSize });
  } finally {
    await cache.close();
  }
}
