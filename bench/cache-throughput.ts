/**
 * Cache throughput, measured side by side in one run (ratios, not absolute numbers):
 *  - warm: CachedBlob.read over a complete blob vs a raw pread loop on the same data file, per read size;
 *  - cold: filling the cache from a local stored blob file (fetch + gunzip + sha256 + write + fdatasync)
 *    vs raw decompression of the same frames (gunzipSync, one thread), with sha256 on the event loop
 *    and in the threadpool.
 * Run: `make build && node dist/bench/cache-throughput.js [sizeMiB]`
 */
import { createHash } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, read, rmSync, writeFileSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync, gunzipSync } from 'node:zlib';
import { openCache, type HashMode } from '../src/cache/index.js';
import type { BlobFetcher, ByteRange } from '../src/fetch/types.js';
import type { BlobDescriptor, BlobToc, FrameEntry } from '../src/format/image/types.js';

const MiB = 1024 * 1024;
const sizeMiB = Number(process.argv[2] ?? 64);
const frameSize = MiB;

/** Content that compresses about 2:1, like typical binaries and text. */
function content(size: number): Buffer {
  const buf = Buffer.allocUnsafe(size);
  let x = 0x12345678;
  for (let at = 0; at < size; at += 64) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    const n = Math.min(64, size - at);
    if (x & 1) {
      for (let i = 0; i < n; i++) {
        x ^= x << 13;
        x >>>= 0;
        x ^= x >>> 17;
        x ^= x << 5;
        x >>>= 0;
        buf[at + i] = x & 0xff;
      }
    } else buf.fill(0x61 + (x % 26), at, at + n);
  }
  return buf;
}

function makeBlob(size: number): { stored: Buffer; toc: BlobToc; descriptor: BlobDescriptor; plain: Buffer } {
  const plain = content(size);
  const parts: Buffer[] = [];
  const frames: FrameEntry[] = [];
  let at = 0;
  for (let off = 0; off < size; off += frameSize) {
    const raw = plain.subarray(off, Math.min(size, off + frameSize));
    const z = gzipSync(raw, { level: 6 });
    frames.push({ uncompressedOffset: off, uncompressedSize: raw.length, compressedOffset: at, compressedSize: z.length, digest: createHash('sha256').update(raw).digest('hex') });
    parts.push(z);
    at += z.length;
  }
  const stored = Buffer.concat(parts);
  const blobId = createHash('sha256').update(plain).digest('hex');
  const toc: BlobToc = { blobId, uncompressedSize: size, frameSize, compression: 'gzip', frames };
  const descriptor: BlobDescriptor = {
    digest: 'sha256:' + createHash('sha256').update(stored).digest('hex'), size: stored.length, blobId, uncompressedSize: size,
    tocOffset: stored.length, tocSize: 0, tocDigest: '', compression: 'gzip', frameSize,
  };
  return { stored, toc, descriptor, plain };
}

/** A stand-in for src/fetch/local.ts: ranges of a stored blob file. */
class FileFetcher implements BlobFetcher {
  readonly source: string;
  private fh: Promise<FileHandle>;
  constructor(path: string) {
    this.source = `file:${path}`;
    this.fh = open(path, 'r');
  }
  async fetchRange(_digest: string, range: ByteRange): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(range.length);
    const { bytesRead } = await (await this.fh).read(buf, 0, range.length, range.offset);
    return buf.subarray(0, bytesRead);
  }
  async fetchBlob(): Promise<Buffer> {
    return (await this.fh).readFile();
  }
  async close(): Promise<void> {
    await (await this.fh).close();
  }
}

function preadRaw(fd: number, buf: Buffer, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => read(fd, buf, 0, length, position, (err, n) => (err ? reject(err) : resolve(n))));
}

const mbps = (bytes: number, ms: number): number => bytes / MiB / (ms / 1000);

async function main(): Promise<void> {
  const work = mkdtempSync('/var/tmp/ondemand-bench-cache-');
  try {
    const size = sizeMiB * MiB;
    const { stored, toc, descriptor, plain } = makeBlob(size);
    const storedPath = join(work, 'stored.blob');
    writeFileSync(storedPath, stored);
    console.log(`blob: ${sizeMiB} MiB in ${toc.frames.length} gzip frames of 1 MiB, stored ${(stored.length / MiB).toFixed(1)} MiB`);

    // ---- cold: raw decompression baseline vs cache fill ----
    const rawDecomp = (): number => {
      const t0 = performance.now();
      for (const f of toc.frames) gunzipSync(stored.subarray(f.compressedOffset, f.compressedOffset + f.compressedSize));
      return performance.now() - t0;
    };
    const fill = async (hash: HashMode, how: 'ensure' | 'reads', readAheadFrames = 0): Promise<number> => {
      const dir = join(work, `cache-${hash}-${how}-${Math.random().toString(36).slice(2)}`);
      const cache = await openCache({ dir, hash, readAheadFrames });
      const fetcher = new FileFetcher(storedPath);
      try {
        const blob = await cache.openBlob(descriptor, { fetcher, toc });
        const t0 = performance.now();
        if (how === 'ensure') await blob.ensure(0, size);
        else for (let off = 0; off < size; off += 128 * 1024) await blob.read(off, 128 * 1024);
        const ms = performance.now() - t0;
        if (!(await blob.read(0, size)).equals(plain)) throw new Error('cache returned wrong bytes');
        return ms;
      } finally {
        await fetcher.close();
        await cache.close();
        rmSync(dir, { recursive: true, force: true });
      }
    };
    const best = (xs: number[]): number => Math.min(...xs);
    /** Median of per-run ratios: each ratio compares two measurements taken back to back. */
    const medianRatio = (base: number[], ours: number[]): number => {
      const r = base.map((b, i) => b / (ours[i] as number)).sort((x, y) => x - y);
      return r[Math.floor(r.length / 2)] as number;
    };
    const runs = 5;
    const raw: number[] = [];
    const coldLoop: number[] = [];
    const coldPool: number[] = [];
    const coldReads: number[] = [];
    const coldReadAhead: number[] = [];
    for (let run = 0; run < runs; run++) {
      raw.push(rawDecomp());
      coldLoop.push(await fill('event-loop', 'ensure'));
      coldPool.push(await fill('threadpool', 'ensure'));
      coldReads.push(await fill('event-loop', 'reads'));
      coldReadAhead.push(await fill('event-loop', 'reads', 4));
    }
    const rawMbps = mbps(size, best(raw));
    console.log(`cold: raw gunzipSync best ${rawMbps.toFixed(0)} MB/s (ratios: median over ${runs} back-to-back pairs; best vs best)`);
    const cold = [
      ['cold fill, ensure(whole), sha256 on event loop', coldLoop],
      ['cold fill, ensure(whole), sha256 in threadpool', coldPool],
      ['cold fill, sequential 128 KiB reads, sha256 on event loop', coldReads],
      ['cold fill, sequential 128 KiB reads, readAheadFrames 4', coldReadAhead],
    ] as const;
    for (const [name, ms] of cold) {
      const m = mbps(size, best(ms));
      console.log(`  ${name}: best ${m.toFixed(0)} MB/s; ${medianRatio(raw, ms).toFixed(2)}x (median), ${(m / rawMbps).toFixed(2)}x (best) of raw decompression`);
    }

    // ---- warm: cache read vs raw pread of the same data file ----
    const dir = join(work, 'cache-warm');
    const cache = await openCache({ dir });
    const fetcher = new FileFetcher(storedPath);
    const blob = await cache.openBlob(descriptor, { fetcher, toc });
    await blob.ensure(0, size);
    const fd = openSync(blob.dataPath, 'r');
    try {
      for (const readSize of [4096, 128 * 1024, MiB]) {
        const total = Math.min(size, readSize === 4096 ? 16 * MiB : size);
        const viaCache = async (): Promise<number> => {
          const t0 = performance.now();
          for (let off = 0; off < total; off += readSize) await blob.read(off, readSize);
          return performance.now() - t0;
        };
        const viaPread = async (): Promise<number> => {
          const t0 = performance.now();
          for (let off = 0; off < total; off += readSize) {
            // Same work as the cache's read: a fresh buffer per read.
            await preadRaw(fd, Buffer.allocUnsafe(readSize), readSize, off);
          }
          return performance.now() - t0;
        };
        const c: number[] = [];
        const r: number[] = [];
        for (let run = 0; run < 5; run++) {
          r.push(await viaPread());
          c.push(await viaCache());
        }
        const cm = mbps(total, best(c));
        const rm = mbps(total, best(r));
        console.log(`warm ${readSize / 1024} KiB reads: cache ${cm.toFixed(0)} MB/s, raw pread ${rm.toFixed(0)} MB/s (best); ${medianRatio(r, c).toFixed(2)}x (median), ${(cm / rm).toFixed(2)}x (best)`);
      }
      // Many readers at once (as FUSE serves them): 8 concurrent sequential streams of 128 KiB.
      const streams = async (useCache: boolean): Promise<number> => {
        const t0 = performance.now();
        const part = size / 8;
        await Promise.all(Array.from({ length: 8 }, async (_, s) => {
          for (let off = s * part; off < (s + 1) * part; off += 128 * 1024) {
            if (useCache) await blob.read(off, 128 * 1024);
            else await preadRaw(fd, Buffer.allocUnsafe(128 * 1024), 128 * 1024, off);
          }
        }));
        return performance.now() - t0;
      };
      const c: number[] = [];
      const r: number[] = [];
      for (let run = 0; run < 5; run++) {
        r.push(await streams(false));
        c.push(await streams(true));
      }
      console.log(`warm 8 concurrent 128 KiB streams: cache ${mbps(size, best(c)).toFixed(0)} MB/s, raw pread ${mbps(size, best(r)).toFixed(0)} MB/s (best); ${medianRatio(r, c).toFixed(2)}x (median), ${(best(r) / best(c)).toFixed(2)}x (best)`);
    } finally {
      closeSync(fd);
      await fetcher.close();
      await cache.close();
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
