/**
 * Issue #18 must-show 4: `ondemand convert` against what a conventional tool chain does to get the
 * same erofs image, side by side, runs interleaved:
 *   baseline  `umoci unpack` of the image (from its OCI layout) + `mkfs.erofs --chunksize=1048576
 *             --blobdev=BLOB META ROOTFS` of the result (erofs-utils from Debian)
 *   convert   the shipped `ondemand convert` (CLI) from the local Debian docker-registry to the same
 *             registry (download, apply layers, build frames and TOCs, upload)
 *   to layout the same convert with an OCI layout as its destination: its output on the local disk,
 *             like the baseline's (no upload, which costs the registry beside us CPU for every byte)
 * Images, made here with umoci and pushed with skopeo:
 *   debian2   the Debian minbase tree (makeDebianTree's cache) as two layers: the tree without
 *             /usr/share, then /usr/share (the second layer also deletes a directory of the first: a whiteout)
 *   big2048   2 GiB of random bytes in 16 files of 128 MiB, one layer
 * Run: `make build && node dist/bench/convert-vs-unpack.js [runs=3] [images=debian2,big2048]`
 */
import { execFileSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, openSync, rmSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { cliPath } from '../test/mount/harness.js';
import { startRegistry } from '../test/helpers/registry.js';
import { makeDebianTree } from '../test/helpers/trees.js';
import { median } from './service-daemon.js';

const runs = Number(process.argv[2] ?? 3);
const wanted = (process.argv[3] ?? 'debian2,big2048').split(',');

function run(cmd: string, args: string[], env?: NodeJS.ProcessEnv): void {
  execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'], maxBuffer: 64 << 20, ...(env ? { env } : {}) });
}

function seconds(f: () => void): number {
  const t0 = process.hrtime.bigint();
  f();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/** Builds `layout:name` from the trees in order, one umoci layer each (`prepare(rootfs, i)` changes the bundle's rootfs). */
function umociImage(layout: string, name: string, tmp: string, layers: ((rootfs: string) => void)[]): void {
  run('umoci', ['init', '--layout', layout]);
  run('umoci', ['new', '--image', `${layout}:${name}`]);
  for (const change of layers) {
    const bundle = join(tmp, `bundle-${name}`);
    run('umoci', ['unpack', '--image', `${layout}:${name}`, bundle]);
    change(join(bundle, 'rootfs'));
    run('umoci', ['repack', '--image', `${layout}:${name}`, bundle]);
    rmSync(bundle, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const tmp = mkdtempSync('/var/tmp/ondemand-bench-convert-');
  const registry = await startRegistry({ auth: 'none' });
  const env = { ...process.env, ONDEMAND_RUN_DIR: join(tmp, 'run'), ONDEMAND_CACHE_DIR: join(tmp, 'cache') };
  try {
    const images: { name: string; layout: string }[] = [];
    if (wanted.includes('debian2')) {
      const tree = join(tmp, 'debian');
      const why = makeDebianTree(tree);
      if (why !== undefined) throw new Error(`no Debian tree: ${why}`);
      const layout = join(tmp, 'layout-debian2');
      umociImage(layout, 'debian2', tmp, [
        (rootfs) => {
          run('tar', ['-C', tree, '--exclude=./usr/share', '-cf', join(tmp, 'l1.tar'), '.']);
          run('tar', ['-C', rootfs, '-xpf', join(tmp, 'l1.tar')]);
        },
        (rootfs) => {
          run('tar', ['-C', tree, '-cf', join(tmp, 'l2.tar'), './usr/share']);
          run('tar', ['-C', rootfs, '-xpf', join(tmp, 'l2.tar')]);
          rmSync(join(rootfs, 'var', 'lib', 'apt'), { recursive: true, force: true });
        },
      ]);
      rmSync(join(tmp, 'l1.tar'), { force: true });
      rmSync(join(tmp, 'l2.tar'), { force: true });
      rmSync(tree, { recursive: true, force: true });
      images.push({ name: 'debian2', layout });
    }
    if (wanted.includes('big2048')) {
      const layout = join(tmp, 'layout-big2048');
      umociImage(layout, 'big2048', tmp, [(rootfs) => {
        const chunk = Buffer.alloc(8 << 20);
        mkdirSync(join(rootfs, 'data'), { recursive: true });
        for (let f = 0; f < 16; f++) {
          const fd = openSync(join(rootfs, 'data', `f${f}`), 'w');
          for (let k = 0; k < 16; k++) writeSync(fd, randomFillSync(chunk));
          closeSync(fd);
        }
      }]);
      images.push({ name: 'big2048', layout });
    }
    for (const im of images) run('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci:${im.layout}:${im.name}`, `docker://${registry.host}/bench/${im.name}:src`]);

    const out: string[] = [];
    for (const im of images) {
      const baseline: number[] = [];
      const unpackOnly: number[] = [];
      const convert: number[] = [];
      const toLayout: number[] = [];
      for (let r = 0; r < runs; r++) {
        const doBaseline = (): void => {
          const rootfs = join(tmp, 'unpacked');
          const meta = join(tmp, 'meta.erofs');
          const blob = join(tmp, 'blob.erofs');
          const u = seconds(() => run('umoci', ['unpack', '--image', `${im.layout}:${im.name}`, rootfs]));
          const m = seconds(() => run('mkfs.erofs', ['--quiet', '--chunksize=1048576', `--blobdev=${blob}`, meta, join(rootfs, 'rootfs')]));
          unpackOnly.push(u);
          baseline.push(u + m);
          for (const p of [rootfs, meta, blob]) rmSync(p, { recursive: true, force: true });
        };
        const doConvert = (): void => {
          convert.push(seconds(() => run(process.execPath, [cliPath, 'convert', '--insecure', '--work-dir', tmp,
            `${registry.host}/bench/${im.name}:src`, `${registry.host}/bench/${im.name}:od${r}`], env)));
        };
        const doToLayout = (): void => {
          const dest = join(tmp, 'converted');
          toLayout.push(seconds(() => run(process.execPath, [cliPath, 'convert', '--insecure', '--work-dir', tmp,
            `${registry.host}/bench/${im.name}:src`, `oci:${dest}:od${r}`], env)));
          rmSync(dest, { recursive: true, force: true });
        };
        // Each goes first in turn (the first after a pause finds less in the page cache).
        const order = [doBaseline, doConvert, doToLayout];
        for (let k = 0; k < order.length; k++) order[(r + k) % order.length]!();
        process.stderr.write(`${im.name} run ${r + 1}: umoci unpack + mkfs.erofs ${baseline.at(-1)!.toFixed(2)} s (unpack ${unpackOnly.at(-1)!.toFixed(2)}), `
          + `convert ${convert.at(-1)!.toFixed(2)} s, to a layout ${toLayout.at(-1)!.toFixed(2)} s\n`);
      }
      const ratios = convert.map((c, i) => c / baseline[i]!);
      const layoutRatios = toLayout.map((c, i) => c / baseline[i]!);
      out.push(`${im.name.padEnd(9)} ${median(baseline).toFixed(2).padStart(8)} s ${median(unpackOnly).toFixed(2).padStart(8)} s ${median(convert).toFixed(2).padStart(8)} s   `
        + `${median(ratios).toFixed(2)}x (${ratios.map((x) => x.toFixed(2)).join(' ')})`.padEnd(30)
        + `${median(toLayout).toFixed(2).padStart(8)} s   ${median(layoutRatios).toFixed(2)}x (${layoutRatios.map((x) => x.toFixed(2)).join(' ')})`);
    }
    process.stdout.write(`convert-vs-unpack: ${runs} run(s), medians\n`
      + `image     unpack+mkfs    (unpack)    convert   convert / (unpack+mkfs)   to layout   to layout / (unpack+mkfs)\n${out.join('\n')}\n`
      + 'target (issue #18): convert <= 1.0x umoci unpack + mkfs.erofs\n');
  } finally {
    await registry.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
}

await main();
