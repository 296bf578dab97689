import { defineCommand, out, outJson } from '../command.js';
import { cliConfig } from '../config.js';
import { setting } from '../../config/resolve.js';
import { detect } from '../../mount/mode-choice.js';
import { FEATURE_NAMES } from '../../transport/kernel-features.js';

const LABELS: Record<(typeof FEATURE_NAMES)[number], string> = {
  mountSyscall: 'mount(2)',
  fusermount: 'fusermount3',
  cachefilesOndemand: 'cachefiles on-demand',
  erofs: 'erofs',
  erofsImages: 'erofs our images',
  erofsFileBacked: 'erofs file-backed',
  fuse: 'FUSE',
  fusePassthrough: 'FUSE passthrough',
  fanotifyPreContent: 'fanotify pre-content',
  loop: 'loop devices',
};

export const detectCommand = defineCommand({
  command: 'detect',
  describe: 'Show what this kernel supports and which mount mode `mount` would pick',
  builder: (y) => y
    .option('json', { type: 'boolean', default: false, describe: 'Print JSON' })
    .option('cache-dir', { type: 'string', describe: 'Cache directory whose filesystem fanotify would mark (default cache.dir)' }),
  handler: async (argv) => {
    const report = detect(setting(cliConfig({ 'cache.dir': { flag: '--cache-dir', value: argv['cache-dir'] } }), 'cache.dir'));
    if (argv.json) {
      outJson({ features: report.features, mode: report.mode, reason: report.reason });
      return;
    }
    for (const name of FEATURE_NAMES) {
      const f = report.features[name];
      out(`${LABELS[name].padEnd(21)} ${f.supported ? 'yes' : 'no '}  ${f.reason}`);
    }
    for (const s of report.skipped) out(`skipped ${s}`);
    out(`mode: ${report.mode ?? 'none'} (${report.reason.split('; passed over')[0]})`);
  },
});
