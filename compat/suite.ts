/**
 * Each path proven in a real kernel: every compat scenario runs in its own QEMU VM booted from our
 * builds of Debian's 5.10, 6.1 (with and without the on-demand options) and 6.12. Builds the kernels
 * first when not cached (compat/README.md has the build times). Needs qemu-system-x86_64, busybox,
 * erofs-utils and the linux-source-<version> packages (scripts/install-deps.sh).
 * The scenarios are split over shard files (compat-N.test.ts) so two VMs run side by side, one per
 * core, as vitest runs two files at once.
 */
import { existsSync } from 'node:fs';
import { describe, it, expect, beforeAll } from 'vitest';
import { haveCommand, needs } from '../test/helpers/env.js';
import { ensureDebianTar } from '../test/helpers/trees.js';
import { assertGuestVisible, defaultVariant, ensureKernel, kernelName, type KernelSpec } from './vm.js';
import { loadScenarios, runScenario, scenarioShard } from './scenarios.js';

const ready = needs(
  'compat VM scenarios',
  [haveCommand('qemu-system-x86_64'), 'qemu-system-x86_64 (qemu-system-x86)'],
  [existsSync('/bin/busybox'), '/bin/busybox (busybox-static)'],
  [haveCommand('mkfs.erofs'), 'mkfs.erofs (erofs-utils)'],
  [existsSync(new URL('../dist/compat/guest/serve.js', import.meta.url)), 'dist/compat (run make build)'],
);

/** The override variable of a kernel (build.sh's), when it is set. */
function overridden(k: KernelSpec): boolean {
  if (k.version === '6.1') return (k.variant === 'ondemand' ? process.env.COMPAT_KERNEL : process.env.COMPAT_KERNEL_NO_ONDEMAND) !== undefined;
  const name = `COMPAT_KERNEL_${k.version.replace('.', '_')}${k.variant === defaultVariant(k.version) ? '' : '_NO_ONDEMAND'}`;
  return process.env[name] !== undefined;
}

/** Whether this kernel can be had: its source package is installed or an override names a built one. */
function kernelSource(k: KernelSpec): [boolean, string] {
  return [existsSync(`/usr/src/linux-source-${k.version}.tar.xz`) || overridden(k), `linux-source-${k.version} (scripts/install-deps.sh) for the ${kernelName(k)} kernel`];
}

/** Declares the tests of shard `index` of `count`. */
export function compatSuite(index: number, count: number): void {
  const scenarios = ready ? scenarioShard(loadScenarios(process.env.COMPAT_FILTER), index, count) : [];

  describe.skipIf(!ready)(`compat: scenarios in QEMU VMs of our kernels (shard ${index + 1} of ${count})`, () => {
    // A filter that leaves this shard nothing to run is not a failure ("No test found in suite").
    if (scenarios.length === 0) it.skip(`no scenario of shard ${index + 1} matches COMPAT_FILTER`, () => undefined);

    // Host-side inputs of scenarios (`# needs:`): undefined = ready, else why not.
    const missing = new Map<string, string | undefined>();
    // Kernels whose source is there (others' scenarios skip, or fail in CI).
    const kernels = new Map<string, KernelSpec>(scenarios.map((s) => [kernelName(s.kernel), s.kernel]));
    const buildable = [...kernels.values()].filter((k) => kernelSource(k)[0]);
    beforeAll(async () => {
      assertGuestVisible(); // before building anything
      for (const k of buildable) await ensureKernel(k, (l) => process.stderr.write(`${l}\n`));
      if (scenarios.some((s) => s.needs.includes('debian-minbase'))) missing.set('debian-minbase', ensureDebianTar());
    }, 90 * 60_000);

    for (const s of scenarios) {
      it(`${kernelName(s.kernel)} ${s.mode} ${s.name}`, async (ctx) => {
        if (!needs(`compat scenario ${s.name}`, kernelSource(s.kernel))) ctx.skip();
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
