/**
 * A reading process of `ondemand bench` (run by ops.ts): opens what it needs, prints `ready`, waits for
 * `go` on stdin, does its operations, prints one JSON line (OpsResult). Its own start-up is never
 * timed. The reads happen here, not in the CLI: a process that serves a mount must never read it, and
 * every mode is read the same way.
 *   node ops-main.js '<OpsSpec JSON>'
 */
import { closeSync, lstatSync, openSync, opendirSync, readFileSync, readSync, fstatSync } from 'node:fs';
import { join } from 'node:path';
import { errno, sysError } from '../native/libc.js';
import { pread } from '../native/pread.js';
import { record, type LatencyCounts } from './latency.js';
import type { OpsResult, OpsSpec } from './ops-spec.js';

const PAGE = 4096;
/** Reads of /dev/zero before a rand run's clock starts (JIT warm-up). */
const WARM_UP_READS = 20_000;

function lines(list: string): string[] {
  return readFileSync(list, 'utf8').split('\n').filter((l) => l.length > 0);
}

/** A failed call as one line: what, on which path, why (`EIO: i/o error, read`). */
function failure(what: string, path: string, err: unknown): Error {
  return new Error(`${what} ${path}: ${err instanceof Error ? err.message : String(err)}`);
}

function now(): number {
  return Number(process.hrtime.bigint());
}

/**
 * Per-operation latencies (ms, as performance.now() differences), kept as plain numbers while the
 * operations run and counted into buckets only after the clock stops (bucketing costs more than a
 * page-cache hit).
 */
class Latencies {
  private values: Float64Array;
  private n = 0;
  constructor(expected: number) {
    this.values = new Float64Array(Math.max(1024, expected));
  }
  add(ms: number): void {
    if (this.n === this.values.length) {
      const more = new Float64Array(this.values.length * 2);
      more.set(this.values);
      this.values = more;
    }
    this.values[this.n++] = ms;
  }
  counts(): LatencyCounts {
    const c: LatencyCounts = {};
    for (let i = 0; i < this.n; i++) record(c, this.values[i]! * 1e6);
    return c;
  }
}

/** Prepares the operations; returns the function that does them. */
function prepare(spec: OpsSpec): () => Omit<OpsResult, 'startNs' | 'endNs' | 'latency'> & { latency: Latencies } {
  switch (spec.op) {
    case 'seq':
    case 'tree': {
      const once = spec.op === 'seq' ? spec.files : lines(spec.list).map((p) => join(spec.root, p));
      const files = Array.from({ length: spec.op === 'seq' ? spec.passes ?? 1 : 1 }, () => once).flat();
      // Touched now, so no page of it faults in while the clock runs.
      const buf = Buffer.alloc(spec.blockSize, 1);
      // Not stat'ed beforehand: that would bring their inodes in before a cold run.
      const latency = new Latencies(files.length * 2);
      return () => {
        let ops = 0;
        let bytes = 0;
        for (const f of files) {
          let fd: number;
          try {
            fd = openSync(f, 'r');
          } catch (err) {
            throw failure('open', f, err);
          }
          try {
            for (;;) {
              const t0 = performance.now();
              const n = readSync(fd, buf, 0, buf.length, null);
              latency.add(performance.now() - t0);
              ops++;
              if (n === 0) break;
              bytes += n;
            }
          } catch (err) {
            throw failure('read', f, err);
          } finally {
            closeSync(fd);
          }
        }
        return { ops, bytes, latency };
      };
    }
    case 'rand': {
      const fds = spec.files.map((f) => openSync(f, 'r'));
      const pages = fds.map((fd) => Math.floor(fstatSync(fd).size / PAGE));
      const total = pages.reduce((a, b) => a + b, 0);
      if (total === 0) throw new Error('no whole 4 KiB page in the files to read');
      const buf = Buffer.alloc(PAGE, 1);
      /** `reads` preads at random pages of the files open as `on` (same length as `pages`). */
      const loop = (on: number[], reads: number, seed: number, latency: Latencies | null): void => {
        let x = (seed * 2654435761) >>> 0 || 1;
        for (let k = 0; k < reads; k++) {
          // xorshift32: a page index uniform over every page of the files.
          x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
          let p = Math.floor((x / 4294967296) * total);
          let i = 0;
          while (p >= pages[i]!) p -= pages[i++]!;
          const t0 = performance.now();
          const n = pread(on[i]!, buf, PAGE, p * PAGE);
          if (n < 0) throw failure(`pread at ${p * PAGE} of`, spec.files[i]!, sysError('pread', spec.files[i]!, errno()));
          latency?.add(performance.now() - t0);
          if (n !== PAGE) throw new Error(`short read of ${spec.files[i]!} at ${p * PAGE}: ${n} bytes`);
        }
      };
      // The loop run first on /dev/zero, so the JIT has compiled it before the clock starts (with several
      // readers sharing the CPUs, compiling it meanwhile cost a third of their reads); no file is touched.
      const zero = openSync('/dev/zero', 'r');
      loop(fds.map(() => zero), Math.min(spec.reads, WARM_UP_READS), spec.seed + 7777, new Latencies(WARM_UP_READS));
      closeSync(zero);
      const latency = new Latencies(spec.reads);
      return () => {
        loop(fds, spec.reads, spec.seed, latency);
        for (const fd of fds) closeSync(fd);
        return { ops: spec.reads, bytes: spec.reads * PAGE, latency };
      };
    }
    case 'stat': {
      const paths = lines(spec.list).map((p) => join(spec.root, p));
      const latency = new Latencies(paths.length);
      return () => {
        for (const p of paths) {
          const t0 = performance.now();
          try {
            lstatSync(p);
          } catch (err) {
            throw failure('lstat', p, err);
          }
          latency.add(performance.now() - t0);
        }
        return { ops: paths.length, bytes: 0, latency };
      };
    }
    case 'readdir': {
      const dirs = lines(spec.list).map((p) => join(spec.root, p));
      const latency = new Latencies(dirs.length);
      return () => {
        let entries = 0;
        for (const d of dirs) {
          const t0 = performance.now();
          let dir;
          try {
            dir = opendirSync(d, { bufferSize: 128 });
          } catch (err) {
            throw failure('opendir', d, err);
          }
          try {
            while (dir.readSync() !== null) entries++;
          } catch (err) {
            throw failure('readdir', d, err);
          } finally {
            dir.closeSync();
          }
          latency.add(performance.now() - t0);
        }
        return { ops: entries, bytes: 0, latency };
      };
    }
  }
}

function main(): void {
  const spec = JSON.parse(process.argv[2] ?? '') as OpsSpec;
  const run = prepare(spec);
  process.stdout.write('ready\n');
  let input = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (chunk: string) => {
    input += chunk;
    if (!input.includes('go\n')) return;
    process.stdin.pause();
    const startNs = now();
    let r;
    try {
      r = run();
    } catch (err) {
      process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    }
    const endNs = now();
    const result: OpsResult = { startNs, endNs, ops: r.ops, bytes: r.bytes, latency: r.latency.counts() };
    process.stdout.write(`${JSON.stringify(result)}\n`);
    process.exit(0);
  });
}

try {
  main();
} catch (err) {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
