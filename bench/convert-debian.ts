/**
 * Convert throughput of a Debian minbase image from a local docker-registry, side by side in one run:
 *  - baselines: plain full GETs (curl, to /dev/null) of the image's layer blobs, best of 3, and
 *    `umoci unpack` of the same image from its OCI layout (a conventional full unpack);
 *  - `convertImage` registry → oci: layout, and registry → registry, with the time split into
 *    layer application (download + gunzip + tar + spool) and build (chunk, hash, dedup, frames).
 * The source is made by umoci from a debootstrap minbase tree (makeDebianTree's cache, or
 * $ONDEMAND_BENCH_DEBIAN_ROOTFS) and pushed with skopeo.
 * Run: `make build && node dist/bench/convert-debian.js`
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { convertImage, type ProgressEvent } from '../src/convert/index.js';
import { startRegistry } from '../test/helpers/registry.js';
import { makeDebianTree } from '../test/helpers/trees.js';

const MiB = 1024 * 1024;

function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
}

async function main(): Promise<void> {
  const tmp = mkdtempSync('/var/tmp/ondemand-bench-convert-');
  const registry = await startRegistry({ auth: 'none' });
  try {
    let rootfs = process.env.ONDEMAND_BENCH_DEBIAN_ROOTFS;
    if (rootfs === undefined) {
      rootfs = join(tmp, 'rootfs');
      const why = makeDebianTree(rootfs);
      if (why !== undefined) throw new Error(`no Debian tree: ${why}`);
    }
    const layout = join(tmp, 'layout');
    run('umoci', ['init', '--layout', layout]);
    run('umoci', ['new', '--image', `${layout}:src`]);
    const bundle = join(tmp, 'bundle');
    run('umoci', ['unpack', '--image', `${layout}:src`, bundle]);
    run('cp', ['-a', `${rootfs}/.`, join(bundle, 'rootfs')]);
    run('umoci', ['repack', '--image', `${layout}:src`, bundle]);
    rmSync(bundle, { recursive: true, force: true });
    const src = `${registry.host}/bench/debian:src`;
    run('skopeo', ['copy', '--dest-tls-verify=false', `oci:${layout}:src`, `docker://${src}`]);

    const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    const manifest = JSON.parse(readFileSync(join(layout, 'blobs/sha256', index.manifests[0]!.digest.slice(7)), 'utf8')) as { layers: { digest: string; size: number }[] };
    const compressed = manifest.layers.reduce((n, l) => n + l.size, 0);

    const curlTimes: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t0 = process.hrtime.bigint();
      for (const l of manifest.layers) run('curl', ['-sf', '-o', '/dev/null', `${registry.url}/v2/bench/debian/blobs/${l.digest}`]);
      curlTimes.push(Number(process.hrtime.bigint() - t0) / 1e9);
    }
    const curl = Math.min(...curlTimes);

    const cpu = (): number => {
      const u = process.cpuUsage();
      return (u.user + u.system) / 1e6;
    };
    const measure = async (dst: string): Promise<{ total: number; apply: number; build: number; applyCpu: number; buildCpu: number; uncompressed: number; stored: number }> => {
      let uncompressed = 0;
      let buildStart = 0;
      let buildCpu0 = 0;
      const t0 = Date.now();
      const cpu0 = cpu();
      const result = await convertImage(src, dst, {
        workDir: tmp,
        progress: (e: ProgressEvent) => {
          if (e.kind === 'layer-done') uncompressed += e.uncompressedBytes;
          if (e.kind === 'build-start') {
            buildStart = Date.now();
            buildCpu0 = cpu();
          }
        },
      });
      const total = (Date.now() - t0) / 1000;
      const p = result.platforms[0]!;
      return {
        total, apply: (buildStart - t0) / 1000, build: (Date.now() - buildStart) / 1000, applyCpu: buildCpu0 - cpu0, buildCpu: cpu() - buildCpu0,
        uncompressed, stored: p.blobs.reduce((n, b) => n + b.size, 0),
      };
    };
    const u0 = Date.now();
    run('umoci', ['unpack', '--image', `${layout}:src`, join(tmp, 'unpacked')]);
    const unpack = (Date.now() - u0) / 1000;
    rmSync(join(tmp, 'unpacked'), { recursive: true, force: true });
    const toLayout = await measure(`oci:${join(tmp, 'out')}:conv`);
    rmSync(join(tmp, 'out'), { recursive: true, force: true });
    const toRegistry = await measure(`${registry.host}/bench/debian:od`);

    const line = (name: string, m: Awaited<ReturnType<typeof measure>>): string =>
      `${name.padEnd(22)} ${m.total.toFixed(2)} s  (apply ${m.apply.toFixed(2)} s / ${m.applyCpu.toFixed(2)} s CPU, build+write ${m.build.toFixed(2)} s / ${m.buildCpu.toFixed(2)} s CPU)  ` +
      `${(m.uncompressed / MiB / m.total).toFixed(1)} MiB/s of tar, ${(compressed / MiB / m.total).toFixed(1)} MiB/s of layers  = ${(m.total / curl).toFixed(1)}x curl, ${(m.total / unpack).toFixed(2)}x umoci unpack`;
    process.stdout.write(
      `Debian minbase: ${manifest.layers.length} layer(s), ${(compressed / MiB).toFixed(1)} MiB gzip, ${(toLayout.uncompressed / MiB).toFixed(1)} MiB tar, ` +
        `converted blobs ${(toLayout.stored / MiB).toFixed(1)} MiB\n` +
        `curl full GET (best of 3)  ${curl.toFixed(3)} s  ${(compressed / MiB / curl).toFixed(1)} MiB/s\n` +
        `umoci unpack (from oci:)   ${unpack.toFixed(2)} s  ${(toLayout.uncompressed / MiB / unpack).toFixed(1)} MiB/s of tar\n` +
        line('convert → oci:', toLayout) + '\n' +
        line('convert → registry', toRegistry) + '\n',
    );
  } finally {
    await registry.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
}

await main();
