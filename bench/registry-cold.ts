/**
 * Issue #18 must-shows 1 and 3: cold reads through a fresh mount from a local Debian docker-registry,
 * against `curl` of the same blob from the same registry, side by side in one run, runs interleaved.
 * The image (`ondemand build`, frames as given, default none): one file of `seqMiB` and 32 files of
 * `smallMiB`, random bytes, in one blob.
 *   curl        a plain GET of the whole blob to /dev/null (the wire and the registry at full speed)
 *   get+inflate one process (this one) GETs the blob and inflates its frames as they come (gzip frames
 *               are gzip members back to back): issue #18's baseline for compressed frames
 *   seq         `cat` of the big file through a fresh mount, empty cache (1 reader)
 *   8 readers   8 `cat`s of 8 different small files at once, fresh mount, empty cache
 *   32 readers  32 `cat`s of the 32 small files at once, likewise
 * Every ondemand row runs the shipped CLI and daemon (started before the clock, as a host service;
 * mode auto), on its own run and cache dirs; the time is the readers' wall time. The registry's files
 * are evicted from the page cache before every row. Ratios: MiB/s of the row ÷ MiB/s of curl
 * (uncompressed frames) or of get+inflate (compressed frames).
 *   node dist/bench/registry-cold.js [runs=3] [seqMiB=1024] [smallMiB=32] [compression=none]
 */
import { execFile } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { promisify } from 'node:util';
import { createGunzip } from 'node:zlib';
import { makeHarness } from '../test/mount/harness.js';
import { evictUnder, median, runRegistryBench, startServiceDaemon } from './service-daemon.js';

const exec = promisify(execFile);
const runs = Number(process.argv[2] ?? 3);
const seqMiB = Number(process.argv[3] ?? 1024);
const smallMiB = Number(process.argv[4] ?? 32);
const compression = process.argv[5] ?? 'none';
const SMALL_FILES = 32;
const MiB = 1024 * 1024;
const ROWS = ['curl', 'get+inflate', 'seq', '8 readers', '32 readers'] as const;
type Row = (typeof ROWS)[number];

function randomFile(path: string, mib: number): void {
  const chunk = Buffer.allocUnsafe(MiB);
  const parts: Buffer[] = [];
  for (let m = 0; m < mib; m++) parts.push(Buffer.from(randomFillSync(chunk)));
  writeFileSync(path, Buffer.concat(parts));
}

runRegistryBench('registry-cold', async ({ tmp, registry, setup }) => {
  const out = (s: string): void => void process.stdout.write(s);
  const tree = join(tmp, 'tree');
  mkdirSync(tree);
  randomFile(join(tree, 'big'), seqMiB);
  for (let i = 0; i < SMALL_FILES; i++) randomFile(join(tree, `f${i}`), smallMiB);
  const layout = join(tmp, 'layout');
  await setup.ok('build', '--compression', compression, tree, `oci:${layout}:od`);
  rmSync(tree, { recursive: true, force: true });
  const ref = `${registry.host}/bench/cold:od`;
  await setup.ok('push', '--insecure', `oci:${layout}:od`, ref);
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  const manifest = JSON.parse(readFileSync(join(layout, 'blobs/sha256', index.manifests[0]!.digest.slice(7)), 'utf8')) as { layers: { digest: string; size: number; annotations?: Record<string, string> }[] };
  const blob = manifest.layers.reduce((a, b) => (b.size > a.size ? b : a));
  rmSync(layout, { recursive: true, force: true });

  const curl = async (): Promise<number> => {
    evictUnder(registry.dir);
    const t0 = performance.now();
    await exec('curl', ['-sf', '-o', '/dev/null', `${registry.url}/v2/bench/cold/blobs/${blob.digest}`]);
    return blob.size / MiB / ((performance.now() - t0) / 1000);
  };
  const getInflate = async (): Promise<number> => {
    evictUnder(registry.dir);
    const t0 = performance.now();
    // The frames only: the blob's table of contents follows them (org.ondemand.toc.offset).
    const framesEnd = Number(blob.annotations?.['org.ondemand.toc.offset'] ?? blob.size);
    const res = await fetch(`${registry.url}/v2/bench/cold/blobs/${blob.digest}`, { headers: { range: `bytes=0-${framesEnd - 1}` } });
    if (!res.ok || res.body === null) throw new Error(`GET of the blob: HTTP ${res.status}`);
    let bytes = 0;
    const count = new Writable({ write(chunk: Buffer, _enc, done) { bytes += chunk.length; done(); } });
    const body = Readable.fromWeb(res.body as WebReadableStream<Uint8Array>);
    if (compression === 'gzip') await pipeline(body, createGunzip(), count);
    else await pipeline(body, count);
    return bytes / MiB / ((performance.now() - t0) / 1000);
  };
  const read = async (files: string[]): Promise<number> => {
    const h = makeHarness('bench-cold');
    try {
      const mnt = h.mountpoint();
      await startServiceDaemon(h);
      await h.ok('mount', '--insecure', '--image', ref, mnt);
      evictUnder(registry.dir);
      const t0 = performance.now();
      await Promise.all(files.map((f) => exec('sh', ['-c', 'cat "$1" > /dev/null', 'sh', join(mnt, f)])));
      const mib = files.reduce((n, f) => n + (f === 'big' ? seqMiB : smallMiB), 0);
      const rate = mib / ((performance.now() - t0) / 1000);
      await h.ok('umount', mnt);
      return rate;
    } finally {
      await h.cleanup();
    }
  };
  const small = (n: number): string[] => Array.from({ length: n }, (_, i) => `f${i}`);
  const measure: Record<Row, () => Promise<number>> = {
    curl,
    'get+inflate': getInflate,
    seq: () => read(['big']),
    '8 readers': () => read(small(8)),
    '32 readers': () => read(small(SMALL_FILES)),
  };
  const results = new Map<Row, number[]>(ROWS.map((r) => [r, []]));
  for (let run = 0; run < runs; run++) {
    const order = [...ROWS.slice(run % ROWS.length), ...ROWS.slice(0, run % ROWS.length)];
    for (const row of order) {
      const rate = await measure[row]();
      results.get(row)!.push(rate);
      process.stderr.write(`run ${run + 1}/${runs} ${row}: ${rate.toFixed(0)} MiB/s\n`);
    }
  }
  out(`\nregistry-cold: ${runs} runs; blob ${(blob.size / MiB).toFixed(0)} MiB, frames ${compression}; seq file ${seqMiB} MiB, ${SMALL_FILES} files of ${smallMiB} MiB; registry ${registry.host}\n`);
  const base: Row = compression === 'none' ? 'curl' : 'get+inflate';
  out(`row          MiB/s (median)   ratio to ${base} (median of per-run ratios; per run)\n`);
  for (const row of ROWS) {
    const rates = results.get(row)!;
    const ratios = rates.map((r, i) => r / results.get(base)![i]!);
    out(`${row.padEnd(12)} ${median(rates).toFixed(0).padStart(14)}   ${median(ratios).toFixed(2)}x (${ratios.map((r) => r.toFixed(2)).join(' ')})\n`);
  }
  out('targets (issue #18): seq >= 0.7x curl (uncompressed frames) or get+inflate (compressed); 8 and 32 readers >= 1.0x curl\n');
});
