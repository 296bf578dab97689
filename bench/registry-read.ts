/**
 * Lazy-read throughput from a local Debian docker-registry, side by side in one run:
 *  - baseline: one plain full blob GET with curl (to /dev/null), best of 3; and curl fetching the
 *    blob as 1 MiB ranges in order over one keep-alive connection (the registry's per-request cost);
 *  - RegistryFetcher.fetchRange of every 1 MiB frame of the same blob in random order, with 1, 8
 *    and 32 concurrent readers; plus 32 readers of 128 KiB ranges (request-overhead bound), and
 *    fetchRanges of 8 touching 128 KiB ranges at a time (merged into one request).
 * Run: `make build && node dist/bench/registry-read.js [sizeMiB]` (default 64).
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RegistryClient } from '../src/registry/client.js';
import { pushBlob } from '../src/registry/upload.js';
import { RegistryFetcher } from '../src/fetch/registry.js';
import { startRegistry } from '../test/helpers/registry.js';

const MiB = 1024 * 1024;
const sizeMiB = Number(process.argv[2] ?? 64);
const REPO = 'bench/blob';

function shuffled(n: number): number[] {
  const a = Array.from({ length: n }, (_, i) => i);
  let x = 0x9e3779b9;
  for (let i = n - 1; i > 0; i--) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    const j = x % (i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

async function readAll(fetcher: RegistryFetcher, digest: string, size: number, rangeSize: number, readers: number, merge: number): Promise<number> {
  const order = shuffled(Math.ceil(size / (rangeSize * merge)));
  let next = 0;
  let bytes = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: readers }, async () => {
      while (next < order.length) {
        const base = order[next++]! * rangeSize * merge;
        if (merge === 1) {
          const len = Math.min(rangeSize, size - base);
          const got = await fetcher.fetchRange(digest, { offset: base, length: len });
          bytes += got.length;
        } else {
          const ranges = [];
          for (let k = 0; k < merge && base + k * rangeSize < size; k++) ranges.push({ offset: base + k * rangeSize, length: Math.min(rangeSize, size - base - k * rangeSize) });
          const got = await fetcher.fetchRanges(digest, ranges);
          for (const b of got) bytes += b.length;
        }
      }
    }),
  );
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  if (bytes !== size) throw new Error(`read ${bytes} of ${size} bytes`);
  return size / secs / MiB;
}

/** curl fetching every 1 MiB range in order over one keep-alive connection: the registry's per-request cost. */
function curlRanges(url: string, size: number, dir: string): number {
  const lines: string[] = [];
  for (let off = 0; off < size; off += MiB) lines.push(`url = "${url}"`, `range = "${off}-${Math.min(size, off + MiB) - 1}"`, 'output = "/dev/null"');
  const cfg = join(dir, 'curl-ranges.cfg');
  writeFileSync(cfg, lines.join('\n') + '\n');
  const t0 = process.hrtime.bigint();
  execFileSync('curl', ['-sS', '-K', cfg]);
  return size / (Number(process.hrtime.bigint() - t0) / 1e9) / MiB;
}

function curlOnce(url: string, size: number): number {
  const outText = execFileSync('curl', ['-sS', '-o', '/dev/null', '-w', '%{size_download} %{time_total}', url], { encoding: 'utf8' });
  const [got, secs] = outText.trim().split(' ').map(Number);
  if (got !== size) throw new Error(`curl got ${got} of ${size} bytes`);
  return size / secs! / MiB;
}

async function main(): Promise<void> {
  const reg = await startRegistry({ auth: 'none' });
  const client = new RegistryClient({ registry: reg.host, credentials: { env: {}, dockerConfig: '/nonexistent' } });
  try {
    const data = randomBytes(sizeMiB * MiB);
    const digest = 'sha256:' + createHash('sha256').update(data).digest('hex');
    await pushBlob(client, REPO, digest, data);
    const url = `${reg.url}/v2/${REPO}/blobs/${digest}`;
    curlOnce(url, data.length); // warm the page cache of the registry's storage
    const curl = Math.max(curlOnce(url, data.length), curlOnce(url, data.length), curlOnce(url, data.length));
    const curlSeq = curlRanges(url, data.length, reg.dir);
    const fetcher = new RegistryFetcher(client, REPO);
    const rows: [string, number][] = [];
    for (const readers of [1, 8, 32]) rows.push([`fetchRange 1 MiB, ${readers} reader(s)`, await readAll(fetcher, digest, data.length, MiB, readers, 1)]);
    rows.push(['fetchRange 128 KiB, 32 readers', await readAll(fetcher, digest, data.length, 128 * 1024, 32, 1)]);
    rows.push(['fetchRanges 8x128 KiB merged, 8 readers', await readAll(fetcher, digest, data.length, 128 * 1024, 8, 8)]);
    process.stdout.write(`registry-read: ${sizeMiB} MiB blob on ${reg.host} (docker-registry, filesystem storage)\n`);
    process.stdout.write(`  curl full GET (best of 3)                ${curl.toFixed(0).padStart(6)} MiB/s  1.00x\n`);
    rows.unshift(['curl 1 MiB ranges in order, keep-alive', curlSeq]);
    for (const [name, mibs] of rows) process.stdout.write(`  ${name.padEnd(40)} ${mibs.toFixed(0).padStart(6)} MiB/s  ${(mibs / curl).toFixed(2)}x\n`);
  } finally {
    await client.close();
    await reg.stop();
  }
}

await main();
