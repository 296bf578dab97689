/**
 * Frame compression on the cold path and on the wire (issue #18): gzip (what `ondemand build` writes),
 * zstd and none, on the frames of a real image, side by side in one run.
 *  - The frames: a Debian bookworm minbase tree (test/helpers/trees.ts) built by the shipped builder
 *    (`buildDirectoryToLayout`, `--compression none`): the blob's uncompressed frames, 1 MiB each.
 *  - gzip: the same frames through the shipped BlobWriter (gzip level DEFAULT_GZIP_LEVEL, stored blocks
 *    for a frame that does not compress), and at level 6 for reference.
 *  - zstd: each frame compressed by the `zstd` CLI (Debian's zstd, levels 1 and 3) as its own frame.
 *    ondemand does not write zstd frames: Node 20's zlib has no zstd, so a reader would decode them
 *    with fzstd (pure JavaScript, the decoder `convert` uses for zstd layers) or a native module.
 *  - Decode + verify on one core, every frame in turn, best of RUNS passes: gzip by the cache's own
 *    decodeFrame (zlib in the threadpool, sha256 on the event loop: what a cold fill pays per frame);
 *    zstd by fzstd + sha256 in this process, and by `zstd -d` (native C, one process for every frame)
 *    as what a native binding could reach; none = the sha256 alone.
 * Then, per codec, the time to move and decode the whole blob at three link speeds, with the wire and
 * the decoding overlapped (the larger of the two), and on the wire alone.
 *   make build && node dist/bench/codec.js [runs=3]
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { decompress as zstdDecompress } from 'fzstd';
import { makeDebianTree } from '../test/helpers/trees.js';
import { buildDirectoryToLayout } from '../src/build/to-layout.js';
import { BlobWriter } from '../src/build/blob-writer.js';
import { DEFAULT_GZIP_LEVEL } from '../src/build/builder.js';
import { decodeFrame } from '../src/format/image/frames.js';
import type { BlobToc } from '../src/format/image/types.js';

const MIB = 1024 * 1024;
const LINKS = [{ name: '100 Mbit/s', bytesPerSecond: 100e6 / 8 }, { name: '1 Gbit/s', bytesPerSecond: 1e9 / 8 }, { name: '10 Gbit/s', bytesPerSecond: 10e9 / 8 }];

interface Row {
  codec: string;
  stored: number;
  /** Seconds to decode and verify every frame on one core (best pass). */
  decodeSeconds: number;
  note: string;
}

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

async function bestOf(runs: number, pass: () => Promise<void> | void): Promise<number> {
  let best = Infinity;
  for (let i = 0; i < runs; i++) {
    const t0 = process.hrtime.bigint();
    await pass();
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9);
  }
  return best;
}

/** The blob's uncompressed frames, as the shipped builder lays them out. */
async function rawFrames(tmp: string): Promise<Buffer[]> {
  const rootfs = join(tmp, 'rootfs');
  const problem = makeDebianTree(rootfs);
  if (problem !== undefined) throw new Error(`no Debian tree: ${problem}`);
  const layout = join(tmp, 'layout');
  const built = await buildDirectoryToLayout(rootfs, layout, 'codec', { compression: 'none' });
  const frames: Buffer[] = [];
  for (const blob of built.blobs) {
    const fd = openSync(join(layout, 'blobs', 'sha256', blob.digest.replace(/^sha256:/, '')), 'r');
    try {
      for (let at = 0; at < blob.uncompressedSize; at += MIB) {
        const frame = Buffer.alloc(Math.min(MIB, blob.uncompressedSize - at));
        readSync(fd, frame, 0, frame.length, at);
        frames.push(frame);
      }
    } finally {
      closeSync(fd);
    }
  }
  rmSync(rootfs, { recursive: true, force: true });
  return frames;
}

async function gzipRow(tmp: string, frames: Buffer[], level: number, runs: number): Promise<Row> {
  const w = new BlobWriter(join(tmp, `gzip-${level}`), { frameSize: MIB, compression: 'gzip', gzipLevel: level });
  for (const f of frames) await w.appendChunk(f);
  const built = await w.finish();
  const blob = readFileSync(built.path);
  const toc: BlobToc = built.toc;
  const stored = toc.frames.map((f) => blob.subarray(f.compressedOffset, f.compressedOffset + f.compressedSize));
  const decodeSeconds = await bestOf(runs, async () => {
    for (let i = 0; i < toc.frames.length; i++) await decodeFrame(stored[i]!, toc.frames[i]!, toc, { blob: 'codec', index: i });
  });
  for (let i = 0; i < stored.length; i++) if (!gunzipSync(stored[i]!).equals(frames[i]!)) throw new Error(`gzip frame ${i} does not round-trip`);
  return { codec: `gzip ${level}`, stored: stored.reduce((n, s) => n + s.length, 0), decodeSeconds, note: 'cache decodeFrame (zlib, threadpool) + sha256' };
}

function zstdRows(tmp: string, frames: Buffer[], level: number, runs: number): Row[] {
  const dir = join(tmp, `zstd-${level}`);
  mkdirSync(dir);
  const names = frames.map((f, i) => {
    const name = join(dir, `f${String(i).padStart(6, '0')}`);
    writeFileSync(name, f);
    return name;
  });
  execFileSync('zstd', ['-q', `-${level}`, '--rm', '--no-progress', ...names]);
  const files = names.map((n) => `${n}.zst`);
  const stored = files.map((f) => readFileSync(f));
  const digests = frames.map(sha256);
  let fzstdSeconds = Infinity;
  for (let r = 0; r < runs; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < stored.length; i++) {
      const out = Buffer.from(zstdDecompress(stored[i]!));
      if (out.length !== frames[i]!.length || sha256(out) !== digests[i]) throw new Error(`zstd frame ${i} does not round-trip`);
    }
    fzstdSeconds = Math.min(fzstdSeconds, Number(process.hrtime.bigint() - t0) / 1e9);
  }
  const hashSeconds = hashAll(frames, runs);
  let nativeSeconds = Infinity;
  for (let r = 0; r < runs; r++) {
    const t0 = process.hrtime.bigint();
    execFileSync('zstd', ['-q', '-d', '-c', ...files], { stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 1 << 20 });
    nativeSeconds = Math.min(nativeSeconds, Number(process.hrtime.bigint() - t0) / 1e9);
  }
  const size = stored.reduce((n, s) => n + s.length, 0);
  return [
    { codec: `zstd ${level} (fzstd)`, stored: size, decodeSeconds: fzstdSeconds, note: 'fzstd in this process + sha256' },
    { codec: `zstd ${level} (native)`, stored: size, decodeSeconds: nativeSeconds + hashSeconds, note: '`zstd -d` (one process, every frame) + sha256' },
  ];
}

function hashAll(frames: Buffer[], runs: number): number {
  let best = Infinity;
  for (let r = 0; r < runs; r++) {
    const t0 = process.hrtime.bigint();
    for (const f of frames) sha256(f);
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9);
  }
  return best;
}

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

async function main(): Promise<void> {
  const runs = Number(process.argv[2] ?? 3);
  const tmp = mkdtempSync('/var/tmp/ondemand-bench-codec-');
  try {
    const frames = await rawFrames(tmp);
    const raw = frames.reduce((n, f) => n + f.length, 0);
    const rows: Row[] = [{ codec: 'none', stored: raw, decodeSeconds: hashAll(frames, runs), note: 'sha256 only' }];
    rows.push(await gzipRow(tmp, frames, DEFAULT_GZIP_LEVEL, runs));
    rows.push(await gzipRow(tmp, frames, 6, runs));
    for (const level of [1, 3]) rows.push(...zstdRows(tmp, frames, level, runs));
    process.stdout.write(`codec: ${frames.length} frames of a Debian bookworm minbase blob (${(raw / MIB).toFixed(1)} MiB uncompressed), best of ${runs} pass(es), one core\n`);
    process.stdout.write(`${pad('codec', 20)} ${pad('stored MiB', 11)} ${pad('of raw', 7)} ${pad('decode+verify MiB/s', 20)} `
      + `${LINKS.map((l) => pad(`s @ ${l.name}`, 16)).join(' ')} how decoded\n`);
    for (const r of rows) {
      const perLink = LINKS.map((l) => {
        const wire = r.stored / l.bytesPerSecond;
        return pad(`${Math.max(wire, r.decodeSeconds).toFixed(2)} (wire ${wire.toFixed(2)})`, 16);
      });
      process.stdout.write(`${pad(r.codec, 20)} ${pad((r.stored / MIB).toFixed(1), 11)} ${pad(`${((100 * r.stored) / raw).toFixed(0)} %`, 7)} `
        + `${pad((raw / MIB / r.decodeSeconds).toFixed(0), 20)} ${perLink.join(' ')} ${r.note}\n`);
    }
    process.stdout.write('s @ link: seconds to fetch and decode the whole blob with wire and decoding overlapped (the larger of the two); wire alone in brackets\n');
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

await main();
