/**
 * Issue #16 must-show 4: a mode that fails mid-run is reported failed with its error, the others
 * complete every run, and every mount is gone afterwards. runBench (what `ondemand bench` calls) on a
 * small image from a real registry, 2 runs; fuse-blobs is broken on purpose in run 2, once its cold
 * mount for the seq workload is made (its FUSE connection aborted from outside, as a dead daemon's
 * connection would be: its reads fail; not in a warm phase, where complete blobs are read through FUSE
 * passthrough without the daemon), and fscache, which this host cannot serve, is asked for too (it
 * fails at its first mount).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { runBench } from '../../src/bench/run.js';
import { resolveConfig } from '../../src/config/resolve.js';
import { abortFuseConnection, mountDevice } from '../../src/fuse/connection.js';
import { modeUsable } from '../../src/mount/mode-choice.js';
import { readMountInfo } from '../../src/util/mountinfo.js';
import { haveCommand, isRoot, makeTempDir, needs } from '../helpers/env.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { hostFeatures } from '../helpers/transport-mount.js';
import { cliBuilt, loopsUnder, makeHarness, type Harness } from '../mount/harness.js';
import { BUSYBOX, buildAndPush, makeBenchTree } from './image.js';

const features = isRoot ? hostFeatures() : undefined;
const usable = (m: 'fanotify' | 'fuse-blobs' | 'fscache'): boolean => features !== undefined && modeUsable(m, features).ok;
const ready = needs('ondemand bench with a failing mode', [isRoot, 'root'], [cliBuilt(), 'a current build (make build)'], [haveCommand('docker-registry'), 'docker-registry'],
  [existsSync(BUSYBOX), 'busybox-static'], [usable('fuse-blobs'), 'a kernel that serves fuse-blobs'], [usable('fanotify'), 'a kernel that serves fanotify (6.14+)'],
  [!usable('fscache'), 'a kernel without cachefiles on-demand (fscache must fail here)']);

/** Aborts every FUSE connection mounted under `prefix` (the daemon's private FUSE mounts of fuse-blobs). */
function abortFuseUnder(prefix: string): number {
  let n = 0;
  for (const m of readMountInfo()) {
    if (!m.fstype.startsWith('fuse') || !m.mountpoint.startsWith(`${prefix}/`)) continue;
    if (abortFuseConnection(mountDevice(m.mountpoint))) n++;
  }
  return n;
}

describe.skipIf(!ready)('ondemand bench: a mode that fails mid-run', () => {
  let h: Harness;
  let reg: TestRegistry;
  let work: { dir: string; remove: () => void };
  let ref: string;

  beforeAll(async () => {
    h = makeHarness('bench-fail');
    work = makeTempDir('bench-fail-work');
    reg = await startRegistry();
    makeBenchTree(join(work.dir, 'tree'));
    ref = `${reg.host}/bench/small:t`;
    await buildAndPush(h, join(work.dir, 'tree'), join(work.dir, 'layout'), ref);
  }, 300_000);
  afterAll(async () => {
    await h.cleanup();
    await reg?.stop();
    work.remove();
  });

  it('reports it failed with its error, completes the others, and leaves no mount', async () => {
    const benchDir = join(work.dir, 'benchdir');
    mkdirSync(benchDir);
    const aborted: string[] = [];
    let coldMounts = 0;
    const report = await runBench({
      image: ref, access: { insecure: true }, config: resolveConfig({ noFile: true }),
      modes: ['fanotify', 'fuse-blobs', 'fscache'], workloads: ['seq', 'stat'], runs: 2, randReads: 100, workDir: benchDir,
      progress: (l) => process.stderr.write(`${l}\n`),
      hooks: {
        mounted: (mode, mountpoint, phase) => {
          // fuse-blobs' cold mounts: run 1 seq, run 1 stat, run 2 seq (the third).
          if (mode === 'fuse-blobs' && phase === 'cold' && ++coldMounts === 3) {
            // The bench's dir is two levels above its mountpoints; the daemon's FUSE mounts are under its run dir.
            const n = abortFuseUnder(join(dirname(dirname(mountpoint)), 'run'));
            aborted.push(`${n} connection(s)`);
          }
          return Promise.resolve();
        },
      },
    });
    expect(aborted).toEqual(['1 connection(s)']);
    const outcome = (m: string) => report.modes.find((x) => x.mode === m)!;
    expect(report.modes.map((m) => m.mode)).toEqual(['local', 'fanotify', 'fuse-blobs', 'fscache']);
    expect(outcome('local').status).toBe('ok');
    expect(outcome('fanotify').status).toBe('ok');
    expect(outcome('fuse-blobs')).toMatchObject({ status: 'failed', failedAt: { workload: 'seq', phase: 'cold', run: 2 } });
    expect(outcome('fuse-blobs').error).toBeTruthy();
    expect(outcome('fscache')).toMatchObject({ status: 'failed', failedAt: { workload: 'seq', phase: 'cold', run: 1 } });
    expect(outcome('fscache').error).toMatch(/fscache cannot work here/);
    // The others completed both runs of both workloads, every phase.
    for (const mode of ['local', 'fanotify']) {
      for (const c of report.results.filter((x) => x.mode === mode)) expect(c.samples.length, `${mode} ${c.workload} ${c.phase}`).toBe(2);
    }
    // fuse-blobs: all of run 1, nothing of run 2.
    expect(report.results.filter((x) => x.mode === 'fuse-blobs').flatMap((c) => c.samples.map((s) => `${c.workload} ${c.phase} ${s.run}`)))
      .toEqual(['seq cold 1', 'seq warm 1', 'seq hot 1', 'stat cold 1', 'stat warm 1', 'stat hot 1']);
    // Every mount is gone, no loop device is left on the bench's files, its dir is removed.
    expect(readMountInfo().filter((m) => m.mountpoint.startsWith(benchDir))).toEqual([]);
    expect(loopsUnder([benchDir])).toEqual([]);
    expect(readdirSync(benchDir)).toEqual([]);
    process.stderr.write(`fuse-blobs failed with: ${outcome('fuse-blobs').error ?? ''}\nleft over and detached: ${JSON.stringify(report.leftoverMounts)}\n`);
  }, 900_000);
});
