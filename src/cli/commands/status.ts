import { defineCommand, out, outJson } from '../command.js';
import { DaemonNotRunning, requestDaemon } from '../../daemon/client.js';
import { recordFilePath, runDir } from '../../daemon/paths.js';
import { readRecordFile } from '../../daemon/records.js';

function mib(n: number): string {
  return n < 1024 * 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

export const statusCommand = defineCommand({
  command: 'status',
  describe: 'List mounts, their modes and cache statistics',
  builder: (y) => y.option('json', { type: 'boolean', default: false, describe: 'Print JSON' }),
  handler: async (argv) => {
    try {
      const s = await requestDaemon({ op: 'status' }, 5_000);
      if (argv.json) {
        outJson(s);
        return;
      }
      out(`daemon pid ${s.daemon.pid} (worker ${s.daemon.workerPid}, restarts ${s.daemon.workerRestarts}), cache ${s.cache.dir}`);
      if (s.mounts.length === 0) out('no mounts');
      for (const m of s.mounts) {
        const pt = m.passthroughOpens !== undefined ? `, passthrough opens ${m.passthroughOpens}` : '';
        const pf = m.prefetch ? `, prefetch ${m.prefetch}` : '';
        const pfb = m.prefetchBytesFetched > 0 ? ` (${mib(m.prefetchBytesFetched)} by prefetch)` : '';
        const failed = m.failedReads > 0 ? `, failed reads ${m.failedReads}` : '';
        const changed = (m.changedBehind ?? 0) > 0 ? `, cache files changed by other processes ${m.changedBehind} times (verified again)` : '';
        const stalled = m.fetch.stalled > 0 ? `, ${m.fetch.stalled} fetches stalled (oldest ${(m.fetch.oldestInFlightMs / 1000).toFixed(0)} s)` : '';
        const present = m.bytesTotal > 0 ? `${((m.bytesPresent / m.bytesTotal) * 100).toFixed(1)}%` : '100%';
        out(`${m.mountpoint}  ${m.image}  ${m.mode}  ${present} present (${mib(m.bytesPresent)} of ${mib(m.bytesTotal)}), fetched ${mib(m.bytesFetched)}${pfb} in ${m.requests} requests, hits ${m.hits}, misses ${m.misses}${failed}${changed}${stalled}${pt}${pf}`);
      }
      const limit = s.cache.maxSizeBytes === null ? '' : ` of ${mib(s.cache.maxSizeBytes)}`;
      out(`cache: fetched ${mib(s.cache.bytesFetched)}, hits ${s.cache.hits}, misses ${s.cache.misses}, failed reads ${s.cache.failedReads}, using ${mib(s.cache.usageBytes)}${limit}, evicted ${s.cache.evictedBlobs} blobs`);
      out(`worker memory: rss ${mib(s.daemon.memory.rssBytes)}, heap ${mib(s.daemon.memory.heapUsedBytes)}${s.daemon.metricsAddress ? `; metrics on http://${s.daemon.metricsAddress}/metrics` : ''}`);
    } catch (err) {
      if (!(err instanceof DaemonNotRunning)) throw err;
      const left = readRecordFile(recordFilePath())?.mounts ?? [];
      // Loaded here only: it brings the native fanotify calls, which a status with a daemon never needs.
      const holder = (await import('../../daemon/fanotify-holder.js')).holderPid(runDir());
      if (argv.json) {
        outJson({ daemon: null, mounts: [], cache: null, leftOver: left.map((m) => m.mountpoint), fanotifyHolderPid: holder });
        return;
      }
      out('daemon not running');
      for (const m of left) out(`left over (run ondemand umount): ${m.mountpoint}  ${m.image}`);
      if (holder !== null) {
        out(`fanotify group holder pid ${holder}: keeps the marks of mounts that may still read cache files (reading those files fails with EIO until a daemon runs)`);
      }
    }
  },
});
