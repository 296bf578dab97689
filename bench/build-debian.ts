/**
 * Build time of a Debian bookworm minbase tree, side by side in one run:
 *  - `mkfs.erofs --chunksize=1048576 --blobdev=BLOB META DIR` (erofs-utils, C; no compression, no TOC);
 *  - `ondemand build DIR oci:LAYOUT` with `--compression none` and with `--compression gzip` (default),
 *    each a fresh CLI process (includes Node start-up), writing a complete OCI layout.
 *  - the same build through the API in this process (no CLI start-up: the CLI loads every command);
 *  - `ondemand version` (CLI start-up alone).
 * One warm-up of each (page cache warm for all), then 3 interleaved rounds; best time per case.
 * The tree: $ONDEMAND_BENCH_DEBIAN_ROOTFS, else test/helpers/trees.ts makeDebianTree (cached tar).
 * Run: `make build && node dist/bench/build-debian.js`
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeDebianTree } from '../test/helpers/trees.js';
import { buildDirectoryToLayout } from '../src/build/to-layout.js';

const repo = join(fileURLToPath(import.meta.url), '..', '..', '..');

function timeIt(cmd: string, args: string[]): number {
  const t0 = process.hrtime.bigint();
  execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 64 << 20 });
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

async function main(): Promise<void> {
  const tmp = mkdtempSync('/var/tmp/ondemand-bench-build-');
  try {
    let rootfs = process.env.ONDEMAND_BENCH_DEBIAN_ROOTFS;
    if (rootfs === undefined) {
      rootfs = join(tmp, 'rootfs');
      const problem = makeDebianTree(rootfs);
      if (problem !== undefined) throw new Error(problem);
    }
    const bytes = Number(execFileSync('du', ['-sb', rootfs], { encoding: 'utf8' }).split('\t')[0]);
    let n = 0;
    const cases: Record<string, () => number | Promise<number>> = {
      'mkfs.erofs': () => {
        const i = n++;
        const t = timeIt('mkfs.erofs', ['--quiet', '--chunksize=1048576', `--blobdev=${join(tmp, `blob-${i}`)}`, join(tmp, `meta-${i}`), rootfs!]);
        rmSync(join(tmp, `blob-${i}`));
        rmSync(join(tmp, `meta-${i}`));
        return t;
      },
      'ondemand none': () => {
        const out = join(tmp, `layout-${n++}`);
        const t = timeIt(process.execPath, [join(repo, 'bin/ondemand'), 'build', rootfs!, `oci:${out}:bench`, '--compression', 'none']);
        rmSync(out, { recursive: true });
        return t;
      },
      'ondemand gzip': () => {
        const out = join(tmp, `layout-${n++}`);
        const t = timeIt(process.execPath, [join(repo, 'bin/ondemand'), 'build', rootfs!, `oci:${out}:bench`, '--compression', 'gzip']);
        rmSync(out, { recursive: true });
        return t;
      },
      'api none': async () => {
        const out = join(tmp, `layout-${n++}`);
        const t0 = process.hrtime.bigint();
        await buildDirectoryToLayout(rootfs!, out, 'bench', { compression: 'none' });
        const t = Number(process.hrtime.bigint() - t0) / 1e9;
        rmSync(out, { recursive: true });
        return t;
      },
      'cli start-up': () => timeIt(process.execPath, [join(repo, 'bin/ondemand'), 'version']),
    };
    for (const run of Object.values(cases)) await run();
    const times: Record<string, number[]> = {};
    for (let round = 0; round < 3; round++) {
      for (const [name, run] of Object.entries(cases)) (times[name] ??= []).push(await run());
    }
    const base = Math.min(...times['mkfs.erofs']!);
    process.stdout.write(`tree ${rootfs}: ${(bytes / 2 ** 20).toFixed(0)} MiB\n`);
    process.stdout.write(`${'case'.padEnd(16)}${'best s'.padStart(9)}${'ratio'.padStart(8)}   all rounds\n`);
    for (const [name, ts] of Object.entries(times)) {
      const best = Math.min(...ts);
      process.stdout.write(`${name.padEnd(16)}${best.toFixed(2).padStart(9)}${(best / base).toFixed(2).padStart(7)}x   ${ts.map((t) => t.toFixed(2)).join(' ')}\n`);
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

await main();
