/**
 * Start-up traces on the Debian image from a real registry. A cold mount records the frames its
 * programs read first (`prefetch.trace_seconds`); `ondemand trace export` gives it to a mount on an
 * empty cache (`mount --prefetch-trace FILE`), which fetches them first, merged: the same start-up
 * (`chroot MNT /bin/sh -c 'dpkg -l'`, output dropped) fetches about the same bytes in fewer requests than a cold
 * mount without the trace. A second cold mount on the recording cache replays the kept trace itself.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { haveCommand, isRoot, makeTempDir, needs } from '../helpers/env.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { makeDebianTree } from '../helpers/trees.js';
import { cliBuilt, makeHarness, type Harness } from './harness.js';
import { buildImage, mountStatus, pushLayout } from './images.js';

const ready = needs('start-up traces', [isRoot, 'root'], [cliBuilt(), 'a current build (make build)'], [haveCommand('docker-registry'), 'docker-registry']);

interface Run { ms: number; bytes: number; requests: number }

describe.skipIf(!ready)('start-up traces', () => {
  let reg: TestRegistry;
  let src: { dir: string; remove: () => void };
  let remote: string;
  let treeProblem: string | undefined;
  const harnesses: Harness[] = [];

  /** A daemon on an empty cache (trace recording as given). */
  function fresh(name: string, traceSeconds: number): Harness {
    const h = makeHarness(name, { ONDEMAND_PREFETCH_TRACE_SECONDS: String(traceSeconds) });
    harnesses.push(h);
    return h;
  }

  /** Mounts cold, runs the start-up, unmounts; the figures of that mount. */
  async function startUp(h: Harness, extra: string[] = [], image = remote): Promise<Run> {
    const mp = h.mountpoint();
    await h.ok('mount', '--insecure', '--mode', 'fanotify', ...extra, '--image', image, mp);
    const t0 = performance.now();
    execFileSync('chroot', [mp, '/bin/sh', '-c', 'dpkg -l'], { stdio: ['ignore', 'ignore', 'inherit'] });
    const ms = performance.now() - t0;
    // Let a trace's prefetch finish: its requests are this start-up's.
    await new Promise((r) => setTimeout(r, 1_000));
    const s = await mountStatus(h, mp);
    await h.ok('umount', mp);
    return { ms, bytes: s.bytesFetched, requests: s.requests };
  }

  beforeAll(async () => {
    src = makeTempDir('trace-src');
    treeProblem = makeDebianTree(join(src.dir, 'tree'));
    if (treeProblem) return;
    reg = await startRegistry();
    const h = fresh('trace-build', 0);
    const image = await buildImage(h, join(src.dir, 'tree'), join(src.dir, 'layout'), 'min');
    remote = `${reg.host}/debian:trace`;
    await pushLayout(h, image.ref, remote);
  }, 1_200_000);
  afterAll(async () => {
    for (const h of harnesses) await h.cleanup();
    await reg?.stop();
    src?.remove();
  });

  it('a trace recorded on one cache makes a cold start-up on an empty one fetch the same bytes in fewer requests', async (ctx) => {
    if (treeProblem) ctx.skip(treeProblem);
    const recorder = fresh('trace-record', 30);
    const recorded = await startUp(recorder);
    const list = JSON.parse(await recorder.ok('trace', 'ls', '--json')) as { manifestDigest: string; ranges: number; bytes: number }[];
    expect(list).toHaveLength(1);
    const file = join(src.dir, 'trace.json');
    writeFileSync(file, await recorder.ok('trace', 'export', list[0]!.manifestDigest));

    const without = await startUp(fresh('trace-without', 0));
    const withTrace = await startUp(fresh('trace-with', 0), ['--prefetch-trace', file]);
    // The recording cache replays its own trace on its next cold mount (its blobs evicted first).
    await recorder.ok('daemon', 'stop');
    await recorder.ok('cache', 'gc', '--max-size', '0');
    const replayed = await startUp(recorder);
    // The trace carried by the image itself (`build --prefetch-trace`, as `convert` does it): a cold
    // mount on an empty cache replays it with no flag (same tree, same blobs: only the manifest differs).
    const builder = fresh('trace-carry-build', 0);
    await buildImage(builder, join(src.dir, 'tree'), join(src.dir, 'layout'), 'carried', ['--prefetch-trace', file]);
    const carriedRef = `${reg.host}/debian:carried`;
    await pushLayout(builder, `oci:${join(src.dir, 'layout')}:carried`, carriedRef);
    const carried = await startUp(fresh('trace-carried', 0), [], carriedRef);
    const line = (name: string, r: Run): string => `${name}: ${r.ms.toFixed(0)} ms, ${r.bytes} bytes in ${r.requests} requests`;
    process.stderr.write(`trace of ${list[0]!.ranges} ranges, ${list[0]!.bytes} bytes\n${[
      line('recording (cold)', recorded), line('cold, no trace', without), line('cold, exported trace', withTrace), line('cold, kept trace', replayed),
      line('cold, trace in the image', carried),
    ].join('\n')}\n`);
    expect(list[0]!.ranges).toBeGreaterThan(0);
    expect(withTrace.requests).toBeLessThan(without.requests);
    expect(replayed.requests).toBeLessThan(without.requests);
    expect(carried.requests).toBeLessThan(without.requests);
    expect(Math.abs(carried.bytes - without.bytes)).toBeLessThan(without.bytes * 0.2);
    // The trace holds what the start-up read: within 20 % of the bytes a cold start-up fetches.
    expect(Math.abs(withTrace.bytes - without.bytes)).toBeLessThan(without.bytes * 0.2);
  }, 900_000);
});
