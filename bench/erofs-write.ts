/**
 * erofs writer speed against mkfs.erofs on the same directory, side by side in one run.
 *   node dist/bench/erofs-write.js [DIR]      (default /usr/share/man)
 * The writer's time is split into "scan" (lstat + read every file into a model, inline data) and
 * "write" (writeErofs). mkfs.erofs does both in one go. Xattrs are not scanned (Node has no API).
 */
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { DirNode, ErofsNode } from '../src/format/erofs/model.js';
import { ErofsReader, fromBuffer } from '../src/format/erofs/reader.js';
import { writeErofs } from '../src/format/erofs/writer.js';

function scan(root: string): { root: DirNode; inodes: number } {
  const byIno = new Map<string, ErofsNode>();
  let inodes = 0;
  const make = (path: string): ErofsNode => {
    const st = lstatSync(path, { bigint: true });
    const key = `${st.dev}:${st.ino}`;
    const seen = st.isDirectory() ? undefined : byIno.get(key);
    if (seen !== undefined) return seen;
    inodes++;
    const base = { perm: Number(st.mode) & 0o7777, uid: Number(st.uid), gid: Number(st.gid), mtime: st.mtimeNs / 1_000_000_000n, mtimeNsec: Number(st.mtimeNs % 1_000_000_000n), xattrs: [] };
    let node: ErofsNode;
    if (st.isDirectory()) {
      node = { ...base, kind: 'dir', entries: readdirSync(path, { encoding: 'buffer' }).map((name) => ({ name, node: make(join(path, name.toString())) })) };
    } else if (st.isSymbolicLink()) {
      node = { ...base, kind: 'symlink', target: readlinkSync(path, { encoding: 'buffer' }) };
    } else if (st.isFile()) {
      const bytes = readFileSync(path);
      node = { ...base, kind: 'file', size: bytes.length, data: { kind: 'inline', bytes } };
    } else if (st.isCharacterDevice() || st.isBlockDevice()) {
      const rdev = Number(st.rdev);
      node = { ...base, kind: st.isCharacterDevice() ? 'chardev' : 'blockdev', rdevMajor: (rdev >> 8) & 0xfff, rdevMinor: (rdev & 0xff) | ((rdev >> 12) & 0xfff00) };
    } else {
      node = { ...base, kind: st.isFIFO() ? 'fifo' : 'socket' };
    }
    byIno.set(key, node);
    return node;
  };
  return { root: make(root) as DirNode, inodes };
}

/** Best wall time of `runs`, and the CPU time of that run (this process only: mkfs runs in a child). */
function best<T>(runs: number, fn: () => T): { ms: number; cpuMs: number; value: T } {
  let ms = Infinity;
  let cpuMs = Infinity;
  let value: T | undefined;
  for (let i = 0; i < runs; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    value = fn();
    const wall = performance.now() - t0;
    const c = process.cpuUsage(c0);
    if (wall < ms) {
      ms = wall;
      cpuMs = (c.user + c.system) / 1000;
    }
  }
  return { ms, cpuMs, value: value as T };
}

const dir = process.argv[2] ?? '/usr/share/man';
const tmp = mkdtempSync('/var/tmp/ondemand-bench-erofs-');
try {
  const scanned = best(3, () => scan(dir));
  const spec = { root: scanned.value.root, devices: [], buildTime: 0n, buildTimeNsec: 0 };
  const written = best(5, () => writeErofs(spec));
  const walked = [...ErofsReader.open(fromBuffer(written.value)).walk()].length;
  const img = join(tmp, 'mkfs.img');
  const mkfs = best(3, () => execFileSync('mkfs.erofs', ['-T', '0', '--quiet', img, dir], { stdio: 'ignore' }));
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ')[0];
  const mkfsSize = statSync(img).size;
  const lines = [
    `erofs-write: ${dir}: ${scanned.value.inodes} inodes, ${walked} paths (load average ${load})`,
    `  scan (lstat+read into model)  ${scanned.ms.toFixed(0)} ms`,
    `  writeErofs                    ${written.ms.toFixed(0)} ms (cpu ${written.cpuMs.toFixed(0)} ms)   image ${(written.value.length / 2 ** 20).toFixed(1)} MiB`,
    `  mkfs.erofs 1.5                ${mkfs.ms.toFixed(0)} ms   image ${(mkfsSize / 2 ** 20).toFixed(1)} MiB`,
    `  ratio mkfs / writeErofs       ${(mkfs.ms / written.ms).toFixed(1)}x`,
    `  ratio mkfs / (scan + write)   ${(mkfs.ms / (scanned.ms + written.ms)).toFixed(1)}x`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
