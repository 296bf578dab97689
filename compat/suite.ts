/**
 * The kernel path proven in a real kernel: every compat scenario runs in its own QEMU VM booted from our
 * 6.1 build (with and without the on-demand options). Builds the kernels first when not cached
 * (about 5 min each on 2 cores). Needs qemu-system-x86_64, busybox, erofs-utils and linux-source-6.1.
 * The scenarios are split over shard files (compat-N.test.ts) so two VMs run side by side, one per
 * core, as vitest runs two files at once.
 */
import { existsSync } from 'node:fs';
import { describe, it, expect, beforeAll } from 'vitest';
import { haveCommand, needs } from '../test/helpers/env.js';
import { ensureDebianTar } from '../test/helpers/trees.js';
import { ensureKernel } from './vm.js';
import { loadScenarios, runScenario, scenarioShard } from './scenarios.js';

const ready = needs(
  'compat VM scenarios',
  [haveCommand('qemu-system-x86_64'), 'qemu-system-x86_64 (qemu-system-x86)'],
  [existsSync('/bin/busybox'), '/bin/busybox (busybox-static)'],
  [haveCommand('mkfs.erofs'), 'mkfs.erofs (erofs-utils)'],
  [existsSync('/usr/src/linux-source-6.1.tar.xz') || process.env.COMPAT_KERNEL !== undefined, 'linux-source-6.1 (or COMPAT_KERNEL)'],
  [existsSync(new URL('../dist/compat/guest/serve.js', import.meta.url)), 'dist/compat (run make build)'],
);

/** Declares the tests of shard `index` of `count`. */
export function compatSuite(index: number, count: number): void {
  const scenarios = ready ? scenarioShard(loadScenarios(process.env.COMPAT_FILTER), index, count) : [];

  describe.skipIf(!ready)(`compat: cachefiles on-demand in a 6.1 VM (shard ${index + 1} of ${count})`, () => {
    // Host-side inputs of scenarios (`# needs:`): undefined = ready, else why not.
    const missing = new Map<string, string | undefined>();
    beforeAll(async () => {
      for (const k of new Set(scenarios.map((s) => s.kernel))) await ensureKernel(k, (l) => process.stderr.write(`${l}\n`));
      if (scenarios.some((s) => s.needs.includes('debian-minbase'))) missing.set('debian-minbase', ensureDebianTar());
    }, 30 * 60_000);

    for (const s of scenarios) {
      it(`${s.kernel} ${s.mode} ${s.name}`, async (ctx) => {
        for (const need of s.needs) {
          const why = missing.get(need);
          if (why !== undefined) {
            needs(`compat scenario ${s.name}`, [false, `${need}: ${why}`]);
            ctx.skip(why);
          }
        }
        const r = await runScenario(s);
        // The scenario's own notes (what it measured: bytes fetched, timings) go in the test log.
        const notes = r.stdout.split('\n').filter((l) => l.startsWith('== '));
        process.stderr.write(`${s.name} (${(r.durationMs / 1000).toFixed(0)} s):\n${notes.map((l) => `  ${l}`).join('\n')}\n`);
        if (r.rc !== 0) {
          process.stderr.write(`${s.name} stdout:\n${r.stdout}\nstderr:\n${r.stderr.slice(-6000)}\ndmesg:\n${r.dmesg.split('\n').slice(-30).join('\n')}\n`);
        }
        expect(r.rc, `${s.name}: ${r.stderr.split('\n').filter((l) => l.startsWith('FAIL')).join('; ')}`).toBe(0);
      }, s.timeoutMs + 30_000);
    }
  });
}
