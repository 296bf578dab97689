/**
 * Guest-side read benchmark: reads every regular file under a directory sequentially (1 MiB reads) or
 * at random 4 KiB offsets, and prints {bytes, ms}. Used by bench/fscache-read.ts inside the compat VM.
 *   readbench.js seq|rand DIR [randomReads]
 */
import { openSync, readSync, closeSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function files(dir: string): { path: string; size: number }[] {
  const out: { path: string; size: number }[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...files(p));
    else if (e.isFile()) out.push({ path: p, size: statSync(p).size });
  }
  return out.sort((a, b) => a.path.localeCompare(b.path));
}

const [mode, dir, count] = process.argv.slice(2);
const list = files(dir ?? '.');
const buf = Buffer.alloc(1 << 20);
let bytes = 0;
const t0 = process.hrtime.bigint();
if (mode === 'seq') {
  for (const f of list) {
    const fd = openSync(f.path, 'r');
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n <= 0) break;
      bytes += n;
    }
    closeSync(fd);
  }
} else {
  // Deterministic xorshift so every mode reads the same offsets.
  let x = 0x9e3779b9;
  const rnd = (): number => ((x ^= x << 13), (x ^= x >>> 17), (x ^= x << 5), (x >>> 0) / 0x100000000);
  const big = list.filter((f) => f.size >= 4096);
  const fds = big.map((f) => openSync(f.path, 'r'));
  for (let i = 0; i < Number(count ?? 2000); i++) {
    const k = Math.floor(rnd() * big.length);
    const off = Math.floor((rnd() * big[k]!.size) / 4096) * 4096;
    bytes += readSync(fds[k]!, buf, 0, 4096, off);
  }
  for (const fd of fds) closeSync(fd);
}
const ms = Number(process.hrtime.bigint() - t0) / 1e6;
process.stdout.write(`${JSON.stringify({ mode, dir, bytes, ms })}\n`);
