/**
 * fuse-tree on this host, through the daemon (`ondemand mount --mode fuse-tree`), judged against the
 * source tree and against the kernel's own erofs mount of the same image (fanotify, or fuse-blobs
 * where fanotify is out): the hard-case tree (hard links, xattrs, devices, a 20 000-entry directory,
 * 255-byte and non-UTF-8 names, times before 1970 and after 2038).
 * A read-only POSIX conformance check of our own design: every lstat field, readdir (names, d_ino,
 * d_type, order), telldir/seekdir, xattrs, symlinks, and every write-type call failing with EROFS.
 * The kernel mount reads the whole image first, so fuse-tree then fetches 0 bytes: one cache backend.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import {
  chmodSync, chownSync, linkSync, lstatSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmdirSync, symlinkSync, truncateSync,
  unlinkSync, utimesSync, writeFileSync, type BigIntStats,
} from 'node:fs';
import { join } from 'node:path';
import { getXattr, listXattrs, setXattr } from '../../src/native/xattr.js';
import { mknod, S_IFIFO } from '../../src/native/fsops.js';
import { haveCommand, isRoot, makeTempDir, needs } from '../helpers/env.js';
import { compareTrees } from '../helpers/tree-compare.js';
import { makeHardCaseTree } from '../helpers/trees.js';
import { cliBuilt, detectHere, leftovers, makeHarness, type Harness } from './harness.js';
import { mountStatus } from './images.js';

const ready = needs('fuse-tree conformance', [isRoot, 'root'], [cliBuilt(), 'a current build (make build)'], [haveCommand('python3'), 'python3'],
  [haveCommand('perl'), 'perl']);

/** Every path under root (raw bytes, relative), parents first. */
function walk(root: Buffer, rel: Buffer = Buffer.alloc(0), out: Buffer[] = []): Buffer[] {
  const dir = rel.length ? Buffer.concat([root, Buffer.from('/'), rel]) : root;
  for (const name of readdirSync(dir, { encoding: 'buffer' })) {
    const r = rel.length ? Buffer.concat([rel, Buffer.from('/'), name]) : name;
    out.push(r);
    if (lstatSync(Buffer.concat([root, Buffer.from('/'), r])).isDirectory()) walk(root, r, out);
  }
  return out;
}

const FIELDS = ['ino', 'nlink', 'mode', 'uid', 'gid', 'rdev', 'size', 'blocks', 'blksize', 'atimeNs', 'mtimeNs', 'ctimeNs'] as const;

function statFields(s: BigIntStats): Record<string, string> {
  return Object.fromEntries(FIELDS.map((f) => [f, String(s[f])]));
}

/** Per directory: (name, d_ino, d_type) in readdir order, as Python's scandir sees them (names as hex). */
const SCANDIR = `
import os, sys, json
root = os.fsencode(sys.argv[1])
out = {}
for d, dirs, files in os.walk(root):
    out[d[len(root):].hex()] = [[e.name.hex(), e.inode(), 'd' if e.is_dir(follow_symlinks=False) else 'l' if e.is_symlink() else 'f' if e.is_file(follow_symlinks=False) else 'o'] for e in os.scandir(d)]
print(json.dumps(out))
`;

/** telldir/seekdir/rewinddir on a directory: reads 12000 names, remembers the position, reads 5, goes back and reads them again. */
const SEEKDIR = `
opendir(my $d, $ARGV[0]) or die "opendir: $!";
my @all; while (defined(my $e = readdir($d))) { push @all, $e; }
rewinddir($d);
for (1..12000) { readdir($d); }
my $pos = telldir($d);
my @a = map { scalar readdir($d) } 1..5;
seekdir($d, $pos);
my @b = map { scalar readdir($d) } 1..5;
rewinddir($d);
my $n = 0; $n++ while defined(readdir($d));
print join(",", scalar(@all), $n, join("|", @a) eq join("|", @b) ? "same" : "differ", $a[0]), "\\n";
`;

function errCode(f: () => unknown): string {
  try {
    f();
    return 'no error';
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? String(err);
  }
}

describe.skipIf(!ready)('fuse-tree: the whole tree over FUSE from our own erofs reader', () => {
  let h: Harness;
  let tmp: { dir: string; remove: () => void };
  let src: string;
  let ref: string;
  let kernelMp: string;
  let treeMp: string;
  let kernelMode: string;

  beforeAll(async () => {
    tmp = makeTempDir('fuse-tree');
    src = join(tmp.dir, 'src');
    makeHardCaseTree(src);
    ref = `oci:${join(tmp.dir, 'layout')}:hard`;
    h = makeHarness('fuse-tree');
    await h.ok('build', src, ref);
    kernelMode = detectHere()?.features.fanotifyPreContent?.supported ? 'fanotify' : 'fuse-blobs';
    kernelMp = h.mountpoint('kernel');
    treeMp = h.mountpoint('tree');
  }, 600_000);

  afterAll(async () => {
    await h?.cleanup();
    tmp?.remove();
  });

  it('the kernel\'s erofs mount reads the whole image; fuse-tree then equals the source and fetches nothing', async () => {
    await h.ok('mount', '--mode', kernelMode, '--image', ref, kernelMp);
    expect(compareTrees(src, kernelMp)).toEqual([]);
    const out = await h.ok('mount', '--mode', 'fuse-tree', '--image', ref, treeMp);
    expect(out).toMatch(/mode fuse-tree/);
    expect(readMounts()).toContain(`${treeMp} fuse.ondemand ro,`);
    expect(compareTrees(src, treeMp)).toEqual([]);
    const status = await mountStatus(h, treeMp);
    process.stderr.write(`fuse-tree after ${kernelMode} read the image: ${status.bytesFetched} bytes fetched\n`);
    expect(status.bytesFetched).toBe(0);
  }, 600_000);

  it('every lstat field of every entry is what the kernel\'s erofs shows', () => {
    const paths = walk(Buffer.from(treeMp));
    expect(paths.length).toBeGreaterThan(20_000);
    const diffs: string[] = [];
    for (const p of [Buffer.alloc(0), ...paths]) {
      const t = statFields(lstatSync(Buffer.concat([Buffer.from(treeMp), Buffer.from('/'), p]), { bigint: true }));
      const k = statFields(lstatSync(Buffer.concat([Buffer.from(kernelMp), Buffer.from('/'), p]), { bigint: true }));
      for (const f of FIELDS) if (t[f] !== k[f]) diffs.push(`${p.toString('latin1') || '/'}: ${f} ${t[f]} (fuse-tree) vs ${k[f]} (erofs)`);
    }
    expect(diffs.slice(0, 20)).toEqual([]);
  }, 300_000);

  it('readdir gives the same names, d_ino, d_type and order as the kernel\'s erofs', () => {
    const scan = (root: string): Record<string, [string, number, string][]> =>
      JSON.parse(execFileSync('python3', ['-c', SCANDIR, root], { encoding: 'utf8', maxBuffer: 256 << 20 })) as Record<string, [string, number, string][]>;
    const t = scan(treeMp);
    const k = scan(kernelMp);
    expect(Object.keys(t).sort()).toEqual(Object.keys(k).sort());
    for (const dir of Object.keys(k)) expect(t[dir], `directory ${Buffer.from(dir, 'hex').toString('latin1')}`).toEqual(k[dir]);
    expect(t[Buffer.from('/bigdir').toString('hex')]).toHaveLength(20_000);
  }, 300_000);

  it('telldir/seekdir/rewinddir positions hold in a 20 000-entry directory', () => {
    const run = (root: string): string => execFileSync('perl', ['-e', SEEKDIR, join(root, 'bigdir')], { encoding: 'utf8' }).trim();
    const t = run(treeMp);
    expect(t).toBe(run(kernelMp));
    expect(t).toMatch(/^20002,20002,same,entry-/);
  }, 120_000);

  it('xattrs and symlinks as the kernel shows them; a missing xattr is ENODATA', () => {
    for (const rel of ['xattrs/many', 'xattrs/capability', 'xattrs/empty-value', 'xattrs/opaque', 'xattrs/link-with-trusted', 'sizes/size-1']) {
      const names = listXattrs(join(kernelMp, rel));
      expect(listXattrs(join(treeMp, rel)), rel).toEqual(names);
      for (const n of names) expect(getXattr(join(treeMp, rel), n).equals(getXattr(join(kernelMp, rel), n)), `${rel} ${n}`).toBe(true);
    }
    expect(errCode(() => getXattr(join(treeMp, 'xattrs', 'user'), 'user.missing'))).toBe('ENODATA');
    const target = (root: string): string => execFileSync('readlink', [join(root, 'symlinks', 'non-utf8-target')]).toString('hex');
    expect(target(treeMp)).toBe(target(kernelMp));
  });

  it('every write-type call fails with EROFS', () => {
    const at = (...p: string[]): string => join(treeMp, ...p);
    const calls: [string, () => unknown][] = [
      ['create', () => writeFileSync(at('new-file'), 'x')],
      ['open for writing', () => openSync(at('sizes', 'size-1'), 'r+')],
      ['truncate', () => truncateSync(at('sizes', 'size-1'), 0)],
      ['mkdir', () => mkdirSync(at('new-dir'))],
      ['rmdir', () => rmdirSync(at('empty', 'a'))],
      ['unlink', () => unlinkSync(at('sizes', 'size-1'))],
      ['rename', () => renameSync(at('sizes', 'size-1'), at('sizes', 'moved'))],
      ['link', () => linkSync(at('sizes', 'size-1'), at('sizes', 'linked'))],
      ['symlink', () => symlinkSync('x', at('new-link'))],
      ['chmod', () => chmodSync(at('sizes', 'size-1'), 0o600)],
      ['chown', () => chownSync(at('sizes', 'size-1'), 1, 1)],
      ['utimes', () => utimesSync(at('sizes', 'size-1'), 1, 1)],
      ['setxattr', () => setXattr(at('sizes', 'size-1'), 'user.new', Buffer.from('v'))],
      ['mknod', () => mknod(Buffer.from(at('new-fifo')), S_IFIFO | 0o644)],
    ];
    expect(calls.map(([name, f]) => `${name}: ${errCode(f)}`)).toEqual(calls.map(([name]) => `${name}: EROFS`));
  });

  it('unmounts cleanly, leaving nothing behind', async () => {
    await h.ok('umount', treeMp);
    await h.ok('umount', kernelMp);
    expect(leftovers(h, [treeMp, kernelMp])).toEqual({ mounts: [], loops: [] });
  }, 60_000);
});

function readMounts(): string {
  return readFileSync('/proc/mounts', 'utf8');
}
