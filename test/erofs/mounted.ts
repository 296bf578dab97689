/**
 * Test helpers: look at a mounted erofs through the kernel (lstat, readdir, readlink, getfattr) and
 * loop devices / mounts with cleanup.
 */
import { execFileSync } from 'node:child_process';
import { lstatSync, readdirSync, readlinkSync } from 'node:fs';
import { errno, mount, MNT_DETACH, MS_RDONLY, umount2 } from '../../src/native/libc.js';

export interface KernelEntry {
  mode: number;
  uid: number;
  gid: number;
  size: bigint;
  nlink: number;
  mtimeNs: bigint;
  ino: bigint;
  rdevMajor: number;
  rdevMinor: number;
  target?: Buffer;
  names?: Buffer[];
}

/** glibc dev_t → major/minor. */
export function splitDev(dev: bigint): { major: number; minor: number } {
  const major = Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn));
  const minor = Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn));
  return { major, minor };
}

/** Every path under `root` (relative, '' for the root itself, '/'-joined bytes) with what lstat says. */
export function scanMounted(root: string): Map<string, KernelEntry> {
  const out = new Map<string, KernelEntry>();
  const stack: Buffer[] = [Buffer.alloc(0)];
  while (stack.length > 0) {
    const rel = stack.pop()!;
    const abs = Buffer.concat([Buffer.from(root), rel]);
    const st = lstatSync(abs, { bigint: true });
    const dev = splitDev(st.rdev);
    const e: KernelEntry = {
      mode: Number(st.mode), uid: Number(st.uid), gid: Number(st.gid), size: st.size, nlink: Number(st.nlink), mtimeNs: st.mtimeNs,
      ino: st.ino, rdevMajor: dev.major, rdevMinor: dev.minor,
    };
    if (st.isSymbolicLink()) e.target = readlinkSync(abs, { encoding: 'buffer' });
    if (st.isDirectory()) {
      e.names = readdirSync(abs, { encoding: 'buffer' }).sort((a, b) => Buffer.compare(a, b));
      for (const n of e.names) stack.push(Buffer.concat([rel, Buffer.from('/'), n]));
    }
    out.set(rel.toString('hex'), e);
  }
  return out;
}

/** getfattr -R -d -m - -e hex: relative path (hex of bytes) → sorted [name, hex value]. */
export function kernelXattrs(root: string): Map<string, [string, string][]> {
  const text = execFileSync('getfattr', ['-R', '-P', '-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', root], {
    env: { ...process.env, LC_ALL: 'C' }, maxBuffer: 1 << 30, encoding: 'latin1',
  });
  const out = new Map<string, [string, string][]>();
  let cur: [string, string][] | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('# file: ')) {
      const bytes = unescapeOctal(line.slice(8));
      const rel = bytes.subarray(Buffer.byteLength(root));
      cur = [];
      out.set(rel.toString('hex'), cur);
    } else if (line.length > 0 && cur !== undefined) {
      const eq = line.indexOf('=');
      const name = eq < 0 ? line : line.slice(0, eq);
      const value = eq < 0 ? '' : line.slice(eq + 1).replace(/^0x/, '').replace(/^""$/, '');
      cur.push([name, value]);
    }
  }
  for (const v of out.values()) v.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return out;
}

function unescapeOctal(s: string): Buffer {
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\\' && /^[0-7]{3}$/.test(s.slice(i + 1, i + 4))) {
      bytes.push(parseInt(s.slice(i + 1, i + 4), 8));
      i += 3;
    } else {
      bytes.push(s.charCodeAt(i) & 0xff);
    }
  }
  return Buffer.from(bytes);
}

export function losetup(file: string): string {
  return execFileSync('losetup', ['-f', '--show', '-r', file], { encoding: 'utf8' }).trim();
}

export function detachLoop(dev: string): void {
  try {
    execFileSync('losetup', ['-d', dev], { stdio: 'ignore' });
  } catch {
    // already gone
  }
}

export function mountErofs(source: string, mnt: string, devices: string[]): void {
  const data = devices.map((d) => `device=${d}`).join(',');
  if (mount(source, mnt, 'erofs', MS_RDONLY, data === '' ? null : data) !== 0) {
    throw new Error(`mount ${source} on ${mnt} (${data}) failed: errno ${errno()}`);
  }
}

export function unmount(mnt: string): void {
  umount2(mnt, MNT_DETACH);
}
