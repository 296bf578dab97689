/**
 * The tar reader against archives made by GNU tar (pax, gnu and ustar formats; plain, gzip and
 * zstd): every entry's type, name, link target, size, mode, owner, mtime, device numbers, xattrs
 * and body must match what lstat says about the source tree.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, linkSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync, lutimesSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { openLayerStream } from '../../src/convert/layer-stream.js';
import { readTar, type TarEntry } from '../../src/convert/tar.js';
import { setXattr } from '../../src/native/xattr.js';
import { haveCommand, isRoot, makeTempDir, needs } from '../helpers/env.js';
import { makeTar, paxHeader } from './tar-maker.js';

interface Seen {
  entry: TarEntry;
  sha256: string;
}

async function parse(bytes: Buffer, compressed = false): Promise<Seen[]> {
  const seen: Seen[] = [];
  const input = compressed ? openLayerStream(Readable.from([bytes]), 'test layer').tar : Readable.from([bytes]);
  await readTar(input, async (entry, body) => {
    const h = createHash('sha256');
    for await (const piece of body) h.update(piece);
    seen.push({ entry, sha256: h.digest('hex') });
  }, { what: 'test' });
  return seen;
}

const LONG_DIR = 'd'.repeat(90) + '/' + 'e'.repeat(90) + '/' + 'f'.repeat(90);
const T = 1_650_000_000;

/** A source tree with every entry type tar knows. Returns paths that only pax/gnu can store. */
function makeTree(root: string, long: boolean): void {
  mkdirSync(join(root, 'dir/sub'), { recursive: true });
  writeFileSync(join(root, 'dir/file'), 'hello\n');
  writeFileSync(join(root, 'dir/empty'), '');
  writeFileSync(join(root, 'big'), Buffer.alloc(200_000, 0x5a));
  chmodSync(join(root, 'big'), 0o4750);
  chownSync(join(root, 'big'), 1234, 5678);
  linkSync(join(root, 'dir/file'), join(root, 'dir/hardlink'));
  symlinkSync('/etc/hostname', join(root, 'abs-symlink'));
  symlinkSync('dir/file', join(root, 'rel-symlink'));
  execFileSync('mknod', [join(root, 'chr'), 'c', '1', '7']);
  execFileSync('mknod', [join(root, 'blk'), 'b', '259', '70000']);
  execFileSync('mkfifo', [join(root, 'fifo')]);
  setXattr(join(root, 'dir/file'), 'user.greeting', Buffer.from('hi there'));
  setXattr(join(root, 'big'), 'trusted.bin', Buffer.from([0, 1, 2, 0xff]));
  if (long) {
    mkdirSync(join(root, LONG_DIR), { recursive: true });
    writeFileSync(join(root, LONG_DIR, 'n'.repeat(150)), 'long name\n');
    symlinkSync('t'.repeat(150), join(root, 'long-target'));
  }
  const stamp = (p: string): void => {
    if (lstatSync(p).isDirectory()) for (const n of readdirSync(p)) stamp(join(p, n));
    lutimesSync(p, T, T + 0.123456789);
  };
  stamp(root);
}

function checkAgainstTree(root: string, seen: Seen[], options: { xattrs: boolean; nsec: boolean }): void {
  const byPath = new Map(seen.map((s) => [s.entry.path.toString().replace(/^\.\//, '').replace(/\/$/, ''), s]));
  const walk = (rel: string): string[] => {
    const out: string[] = [];
    for (const n of readdirSync(join(root, rel))) {
      const p = rel === '' ? n : `${rel}/${n}`;
      out.push(p);
      if (lstatSync(join(root, p)).isDirectory()) out.push(...walk(p));
    }
    return out;
  };
  const paths = walk('');
  for (const p of paths) {
    const s = byPath.get(p);
    expect(s, `entry ${p}`).toBeDefined();
    const e = s!.entry;
    const st = lstatSync(join(root, p), { bigint: true });
    expect(e.uid, p).toBe(Number(st.uid));
    expect(e.gid, p).toBe(Number(st.gid));
    expect(e.mtime, p).toBe(st.mtimeNs / 1_000_000_000n);
    if (options.nsec) expect(e.mtimeNsec, p).toBe(Number(st.mtimeNs % 1_000_000_000n));
    if (st.isSymbolicLink()) {
      expect(e.type, p).toBe('symlink');
      expect(e.linkPath.toString(), p).toBe(readlinkSync(join(root, p)));
      continue;
    }
    expect(e.perm, p).toBe(Number(st.mode & 0o7777n));
    if (st.isDirectory()) expect(e.type, p).toBe('dir');
    else if (st.isFIFO()) expect(e.type, p).toBe('fifo');
    else if (st.isCharacterDevice() || st.isBlockDevice()) {
      expect(e.type, p).toBe(st.isCharacterDevice() ? 'chardev' : 'blockdev');
      const major = Number((st.rdev >> 8n) & 0xfffn);
      const minor = Number((st.rdev & 0xffn) | ((st.rdev >> 12n) & 0xfff00n));
      expect([e.devMajor, e.devMinor], p).toEqual([major, minor]);
    } else if (e.type === 'hardlink') {
      const target = lstatSync(join(root, e.linkPath.toString().replace(/^\.\//, '')), { bigint: true });
      expect(target.ino, p).toBe(st.ino);
    } else {
      expect(e.type, p).toBe('file');
      expect(e.size, p).toBe(Number(st.size));
      expect(s!.sha256, p).toBe(createHash('sha256').update(readFileSync(join(root, p))).digest('hex'));
    }
    if (options.xattrs && (p === 'dir/file' || p === 'big') && e.type !== 'hardlink') {
      expect(e.xattrs.length, p).toBeGreaterThan(0);
    }
  }
  expect(byPath.get('dir/file')?.entry.xattrs.find((x) => x.name === 'user.greeting')?.value.toString() ?? (options.xattrs ? 'missing' : 'hi there')).toBe('hi there');
  if (options.xattrs) {
    const big = byPath.get('big')!.entry.xattrs.find((x) => x.name === 'trusted.bin');
    expect(big?.value).toEqual(Buffer.from([0, 1, 2, 0xff]));
  }
  // Nothing beyond the tree (and the root `./`).
  for (const p of byPath.keys()) if (p !== '.' && p !== '') expect(paths, `extra entry ${p}`).toContain(p);
}

const canRun = needs('tar reader vs GNU tar', [isRoot, 'root (mknod, chown)'], [haveCommand('tar'), 'GNU tar'], [haveCommand('zstd'), 'zstd']);

describe.skipIf(!canRun)('tar reader vs GNU tar', () => {
  const tmp = makeTempDir('convert-tar');
  afterAll(() => tmp.remove());

  const gnuTar = (format: string, root: string, extra: string[] = []): Buffer =>
    execFileSync('tar', [`--format=${format}`, '--xattrs', '--xattrs-include=*', '--numeric-owner', ...extra, '-cf', '-', '-C', root, '.'], { maxBuffer: 64 << 20 });

  it('reads pax archives: long names, long link targets, xattrs, nanosecond mtimes', async () => {
    const root = join(tmp.dir, 'pax');
    mkdirSync(root);
    makeTree(root, true);
    checkAgainstTree(root, await parse(gnuTar('pax', root)), { xattrs: true, nsec: true });
  });

  it('reads gnu archives: ././@LongLink names and link targets', async () => {
    const root = join(tmp.dir, 'gnu');
    mkdirSync(root);
    makeTree(root, true);
    checkAgainstTree(root, await parse(gnuTar('gnu', root)), { xattrs: false, nsec: false });
  });

  it('reads ustar archives (prefix field)', async () => {
    const root = join(tmp.dir, 'ustar');
    mkdirSync(root);
    makeTree(root, false);
    mkdirSync(join(root, 'p'.repeat(120)));
    writeFileSync(join(root, 'p'.repeat(120), 'in-prefix'), 'prefix\n');
    lutimesSync(join(root, 'p'.repeat(120), 'in-prefix'), T, T);
    lutimesSync(join(root, 'p'.repeat(120)), T, T);
    checkAgainstTree(root, await parse(gnuTar('ustar', root)), { xattrs: false, nsec: false });
  });

  it('reads gzip and zstd compressed archives through the layer stream', async () => {
    const root = join(tmp.dir, 'comp');
    mkdirSync(root);
    makeTree(root, true);
    const tar = gnuTar('pax', root);
    const gz = execFileSync('gzip', ['-c'], { input: tar, maxBuffer: 64 << 20 });
    const zst = execFileSync('zstd', ['-c', '-q'], { input: tar, maxBuffer: 64 << 20 });
    checkAgainstTree(root, await parse(gz, true), { xattrs: true, nsec: true });
    checkAgainstTree(root, await parse(zst, true), { xattrs: true, nsec: true });
  });

  it('reads LIBARCHIVE.xattr records, negative fractional PAX times and 32-bit PAX owners', async () => {
    const h = paxHeader({ 'LIBARCHIVE.xattr.user.caf%C3%A9': Buffer.from('dmFsdWU=', 'latin1'), mtime: '-1.5', uid: '4294967295' });
    const seen = await parse(makeTar([h, { name: 'f', data: 'x' }]));
    expect(seen).toHaveLength(1);
    const e = seen[0]!.entry;
    expect(e.xattrs).toEqual([{ name: 'user.café', value: Buffer.from('value') }]);
    expect([e.mtime, e.mtimeNsec]).toEqual([-2n, 500_000_000]);
    expect(e.uid).toBe(4294967295);
  });

  it('accepts an archive that ends right after the last body (umoci 0.4 insert)', async () => {
    const full = makeTar([{ name: 'a', data: 'abc' }], { end: false });
    const seen = await parse(full.subarray(0, 512 + 3));
    expect(seen.map((s) => s.entry.path.toString())).toEqual(['a']);
  });
});
