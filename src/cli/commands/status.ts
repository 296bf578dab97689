import { defineCommand, out, outJson } from '../command.js';
import { DaemonNotRunning, requestDaemon } from '../../daemon/client.js';
import { recordFilePath } from '../../daemon/paths.js';
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
        out(`${m.mountpoint}  ${m.image}  ${m.mode}  fetched ${mib(m.bytesFetched)} in ${m.requests} requests, hits ${m.hits}, misses ${m.misses}${pt}${pf}`);
      }
      out(`cache: fetched ${mib(s.cache.bytesFetched)}, hits ${s.cache.hits}, misses ${s.cache.misses}`);
    } catch (err) {
      if (!(err instanceof DaemonNotRunning)) throw err;
      const left = readRecordFile(recordFilePath())?.mounts ?? [];
      if (argv.json) {
        outJson({ daemon: null, mounts: [], cache: null, leftOver: left.map((m) => m.mountpoint) });
        return;
      }
      out('daemon not running');
      for (const m of left) out(`left over (run ondemand umount): ${m.mountpoint}  ${m.image}`);
    }
  },
});
