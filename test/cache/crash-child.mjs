// Child of crash.test.ts: fills a cache from a stored blob file until it is SIGKILLed.
// Plain ESM over the compiled code (tests themselves are not compiled): a private copy of dist/src
// named by $ONDEMAND_CRASH_SRC, so builds running meanwhile cannot hand it half-written files.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const { openCache } = await import(join(process.env.ONDEMAND_CRASH_SRC ?? new URL('../../dist/src', import.meta.url).pathname, 'cache', 'index.js'));

// Imports are done: wait for the parent's go (it pre-starts children so their start-up overlaps).
const line = await new Promise((resolve) => process.stdin.once('data', (d) => resolve(d.toString())));
const [dir, storedPath, metaPath, seedText] = JSON.parse(line);
const stored = readFileSync(storedPath);
const { descriptor, toc } = JSON.parse(readFileSync(metaPath, 'utf8'));
let seed = Number(seedText) || 1;
const rnd = (n) => {
  seed = (seed * 1103515245 + 12345) & 0x7fffffff;
  return seed % n;
};
const fetcher = {
  source: 'crash-child',
  async fetchRange(_digest, range) {
    if (rnd(3) === 0) await new Promise((r) => setTimeout(r, rnd(3)));
    return Buffer.from(stored.subarray(range.offset, range.offset + range.length));
  },
  async fetchBlob() {
    return Buffer.from(stored);
  },
  async close() {},
};
const cache = await openCache({ dir, maxConcurrentFetches: 4, readAheadFrames: rnd(3), maxMergeBytes: 16384 * (1 + rnd(8)) });
const blob = await cache.openBlob(descriptor, { fetcher, toc });
process.stdout.write('ready\n');
blob.prefetch().catch(() => {});
// Progress for the parent, which kills once a random number of frames is present, plus a random delay.
let reported = -1;
for (;;) {
  const present = blob.stats().framesPresent;
  if (present !== reported) {
    reported = present;
    process.stdout.write(`p${present}\n`);
  }
  const reads = [];
  for (let i = 0; i < 4; i++) reads.push(blob.read(rnd(toc.uncompressedSize), 1 + rnd(100_000)));
  await Promise.all(reads);
  // Reads served from just-verified bytes resolve without I/O: yield so writes and syncs complete.
  await new Promise((r) => setImmediate(r));
  if (blob.isComplete()) await new Promise((r) => setTimeout(r, 5));
}
