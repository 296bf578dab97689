/**
 * Issue #18 must-show 2: `ondemand mount --prefetch` until the image is complete, against `skopeo copy`
 * of the same converted image from the same registry to an OCI layout (which downloads, verifies and
 * writes the same bytes), side by side in one run, runs interleaved (skopeo, ondemand; ondemand,
 * skopeo; ...) so drift cancels.
 * Images: the Debian minbase tree (makeDebianTree's cache) and a tree of big random files, each built by
 * `ondemand build` with the default compression and pushed to a local Debian docker-registry.
 * ondemand runs through the shipped CLI and daemon (its own run and cache dirs each run, so the cache
 * starts empty; the daemon started before the clock, as a host service): the time is from
 * `ondemand mount --prefetch` being started until the daemon's status
 * says the prefetch is done (polled over its control socket every 20 ms), i.e. mount and every blob
 * fetched, verified, written and made durable. The registry's files are evicted from the page cache
 * before every copy, as are the copies themselves afterwards.
 *   node dist/bench/prefetch-pull.js [runs=3] [bigMiB=2048] [compression=gzip]
 */
import { execFile } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { request } from '../src/daemon/client.js';
import { makeHarness, type Harness } from '../test/mount/harness.js';
import { makeDebianTree } from '../test/helpers/trees.js';
import { evictUnder, filesUnder, median, runRegistryBench, startServiceDaemon } from './service-daemon.js';

const exec = promisify(execFile);
const runs = Number(process.argv[2] ?? 3);
const bigMiB = Number(process.argv[3] ?? 2048);
/** Frame compression of both images (`ondemand build --compression`; its default is gzip). */
const compression = process.argv[4] ?? 'gzip';
const MiB = 1024 * 1024;
const FILE_MIB = 256;

function bigTree(dir: string): void {
  mkdirSync(dir, { recursive: true });
  const chunk = Buffer.allocUnsafe(MiB);
  for (let f = 0; f * FILE_MIB < bigMiB; f++) {
    const parts: Buffer[] = [];
    for (let m = 0; m < Math.min(FILE_MIB, bigMiB - f * FILE_MIB); m++) parts.push(Buffer.from(randomFillSync(chunk)));
    writeFileSync(join(dir, `big${f}`), Buffer.concat(parts));
  }
}

interface Image { name: string; ref: string; storedBytes: number }

runRegistryBench('prefetch-pull', async ({ tmp, registry, setup }) => {
  const out = (s: string): void => void process.stdout.write(s);
  const images: Image[] = [];
  const add = async (name: string, tree: string): Promise<void> => {
    const layout = join(tmp, `layout-${name}`);
    await setup.ok('build', '--compression', compression, tree, `oci:${layout}:od`);
    const ref = `${registry.host}/bench/${name}:od`;
    await setup.ok('push', '--insecure', `oci:${layout}:od`, ref);
    const storedBytes = filesUnder(join(layout, 'blobs')).reduce((n, f) => n + statSync(f).size, 0);
    rmSync(layout, { recursive: true, force: true });
    images.push({ name, ref, storedBytes });
  };
  const rootfs = join(tmp, 'debian');
  const why = makeDebianTree(rootfs);
  if (why !== undefined) throw new Error(`no Debian tree: ${why}`);
  await add('debian', rootfs);
  rmSync(rootfs, { recursive: true, force: true });
  const big = join(tmp, 'big');
  bigTree(big);
  await add(`big${bigMiB}m`, big);
  rmSync(big, { recursive: true, force: true });

  const times = new Map<string, { skopeo: number[]; ondemand: number[] }>(images.map((i) => [i.name, { skopeo: [], ondemand: [] }]));
  const mountMs = new Map<string, number[]>(images.map((i) => [i.name, []]));
  const skopeo = async (img: Image): Promise<number> => {
    const dest = join(tmp, 'skopeo-dest');
    rmSync(dest, { recursive: true, force: true });
    evictUnder(registry.dir);
    const t0 = performance.now();
    await exec('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${img.ref}`, `oci:${dest}:od`]);
    const ms = performance.now() - t0;
    rmSync(dest, { recursive: true, force: true });
    return ms;
  };
  const ondemand = async (img: Image): Promise<number> => {
    const h: Harness = makeHarness('bench-prefetch');
    try {
      const mnt = h.mountpoint();
      // The daemon runs before the clock starts, as a host service does (its cache still empty).
      const socket = await startServiceDaemon(h);
      evictUnder(registry.dir);
      const t0 = performance.now();
      await h.ok('mount', '--insecure', '--prefetch', '--image', img.ref, mnt);
      mountMs.get(img.name)!.push(performance.now() - t0);
      for (;;) {
        const s = await request({ op: 'status' }, socket);
        const m = s.mounts.find((x) => x.mountpoint === mnt);
        if (m?.prefetch === 'failed') throw new Error(`prefetch of ${img.ref} failed`);
        if (m?.prefetch === 'done') break;
        await new Promise((r) => setTimeout(r, 20));
      }
      const ms = performance.now() - t0;
      await h.ok('umount', mnt);
      return ms;
    } finally {
      await h.cleanup();
    }
  };

  for (let run = 0; run < runs; run++) {
    for (const img of images) {
      const t = times.get(img.name)!;
      const order = run % 2 === 0 ? (['skopeo', 'ondemand'] as const) : (['ondemand', 'skopeo'] as const);
      for (const who of order) {
        const ms = who === 'skopeo' ? await skopeo(img) : await ondemand(img);
        t[who].push(ms);
        process.stderr.write(`run ${run + 1}/${runs} ${img.name} ${who}: ${(ms / 1000).toFixed(2)} s\n`);
      }
    }
  }
  out(`\nprefetch-pull: ${runs} runs, frames ${compression}; registry ${registry.host} (Debian docker-registry, filesystem storage)\n`);
  out(`image              stored MiB   skopeo copy s   mount --prefetch s (of which mount)   ratio (skopeo/ondemand time; per run)\n`);
  for (const img of images) {
    const t = times.get(img.name)!;
    const ratios = t.skopeo.map((s, i) => s / t.ondemand[i]!);
    out(`${img.name.padEnd(18)} ${(img.storedBytes / MiB).toFixed(0).padStart(10)} ${(median(t.skopeo) / 1000).toFixed(2).padStart(15)} ${(median(t.ondemand) / 1000).toFixed(2).padStart(20)} ${`(${(median(mountMs.get(img.name)!) / 1000).toFixed(2)})`.padStart(17)}   ${median(ratios).toFixed(2)}x (${ratios.map((r) => r.toFixed(2)).join(' ')})\n`);
  }
  out('target (issue #18): mount --prefetch >= 0.8x skopeo copy, i.e. ratio >= 0.80\n');
});
