/**
 * Images made by mkfs.erofs 1.5 (plain, --chunksize=4096, --chunksize=1M --blobdev) from a generated
 * source tree: the reader's listing — paths, modes, ids, sizes, times, nlink, st_ino, rdev, link
 * targets, xattrs, file bytes (readFile, blob as device 1) — equals what the kernel shows for the
 * same image loop-mounted.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chownSync, closeSync, linkSync, lutimesSync, mkdirSync, openSync, readFileSync, readSync, symlinkSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErofsReader, fromFile, type DeviceReader } from '../../src/format/erofs/reader.js';
import { haveCommand, isRoot, makeTempDir, needs } from '../helpers/env.js';
import { detachLoop, kernelXattrs, losetup, mountErofs, scanMounted, unmount } from './mounted.js';
import { ACL_VALUE, CAP_VALUE, randomBytes, rng } from './tree-gen.js';

const canRun = needs('mkfs.erofs interop', [isRoot, 'root'], [haveCommand('mkfs.erofs'), 'mkfs.erofs'], [haveCommand('setfattr'), 'setfattr (attr)'],
  [haveCommand('getfattr'), 'getfattr (attr)'], [haveCommand('losetup'), 'losetup'], [haveCommand('mknod'), 'mknod'], [haveCommand('python3'), 'python3 (socket)']);

function makeSource(src: string): void {
  const r = rng(42);
  const p = (...parts: string[]): string => join(src, ...parts);
  const setx = (file: string, name: string, value: string): void => { execFileSync('setfattr', ['-h', '-n', name, '-v', value, file]); };
  mkdirSync(src);
  for (const size of [0, 1, 4095, 4096, 4097, 8192, 10000, 3_000_000]) writeFileSync(p(`f-${size}`), randomBytes(r, size));
  writeFileSync(p('zeros-1m'), Buffer.alloc(1 << 20));
  writeFileSync(p('dup-a'), Buffer.alloc(20000, 7));
  writeFileSync(p('dup-b'), Buffer.alloc(20000, 7));
  linkSync(p('f-10000'), p('hardlink'));
  symlinkSync('f-1', p('ln-short'));
  symlinkSync('x'.repeat(300), p('ln-300'));
  symlinkSync('/abs/dangling', p('ln-abs'));
  execFileSync('mknod', [p('null'), 'c', '1', '3']);
  execFileSync('mknod', [p('sda1'), 'b', '8', '1']);
  execFileSync('mknod', [p('whiteout'), 'c', '0', '0']);
  execFileSync('mkfifo', [p('fifo')]);
  execFileSync('python3', ['-c', `import socket; socket.socket(socket.AF_UNIX).bind(${JSON.stringify(p('sock'))})`]);
  mkdirSync(p('dir1'));
  for (let i = 0; i < 300; i++) writeFileSync(p('dir1', `file-with-a-long-name-${String(i).padStart(5, '0')}`), `content ${i}\n`);
  mkdirSync(p('empty'));
  mkdirSync(p('opaque'));
  setx(p('opaque'), 'trusted.overlay.opaque', 'y');
  let deep = p('deep');
  mkdirSync(deep);
  for (let i = 0; i < 30; i++) { deep = join(deep, `level${i}`); mkdirSync(deep); }
  writeFileSync(join(deep, 'leaf'), 'leaf');
  // mkfs.erofs 1.5 fails on 255-byte names ("Could not format the device: ENOENT"); 254 is its limit.
  writeFileSync(p('n'.repeat(254)), 'long name');
  writeFileSync(Buffer.concat([Buffer.from(src + '/'), Buffer.from([0xff, 0xfe, 0x41])]), 'latin1 name');
  setx(p('f-1'), 'user.foo', 'bar');
  setx(p('f-4096'), 'security.capability', `0x${CAP_VALUE.toString('hex')}`);
  setx(p('f-4097'), 'system.posix_acl_access', `0x${ACL_VALUE.toString('hex')}`);
  setx(p('f-8192'), 'user.big', `0x${randomBytes(r, 2000).toString('hex')}`);
  for (const f of ['f-0', 'f-1', 'f-4095', 'dir1']) setx(p(f), 'user.shared', 'shared-value');
  chownSync(p('f-4095'), 100000, 200000);
  chownSync(p('f-8192'), 1000, 1000);
  chmodSync(p('f-1'), 0o4755);
  chmodSync(p('f-0'), 0o0);
  chmodSync(p('empty'), 0o1777);
  lutimesSync(p('f-10000'), 1_600_000_000.5, 1_600_000_000.25);
  lutimesSync(p('ln-short'), 1_500_000_000, 1_500_000_000);
}

describe.skipIf(!canRun)('mkfs.erofs 1.5 images: reader equals kernel', () => {
  const t = canRun ? makeTempDir('erofs-mkfs') : { dir: '', remove: () => {} };
  const src = join(t.dir, 'src');
  const mnt = join(t.dir, 'mnt');
  const loops: string[] = [];
  let mounted = false;

  beforeAll(() => {
    makeSource(src);
    mkdirSync(mnt);
  });
  afterAll(() => {
    if (mounted) unmount(mnt);
    for (const l of loops) detachLoop(l);
    t.remove();
  });

  async function compare(image: string, blob: string | undefined): Promise<void> {
    const kernel = scanMounted(mnt);
    const kx = kernelXattrs(mnt);
    const source = fromFile(image);
    const blobFd = blob === undefined ? undefined : openSync(blob, 'r');
    const devices: DeviceReader = {
      read: async (device, offset, length) => {
        if (device !== 1 || blobFd === undefined) throw new Error(`no device ${device}`);
        const b = Buffer.alloc(length);
        readSync(blobFd, b, 0, length, offset);
        return b;
      },
    };
    try {
      const r = ErofsReader.open(source, { name: image });
      const typeBits: Record<string, number> = { file: 0o100000, dir: 0o40000, symlink: 0o120000, chardev: 0o20000, blockdev: 0o60000, fifo: 0o10000, socket: 0o140000 };
      const seen = new Set<string>();
      for (const w of r.walk()) {
        const key = w.path === '/' ? '' : w.pathBytes.toString('hex');
        seen.add(key);
        const k = kernel.get(key);
        expect(k, w.path).toBeDefined();
        const i = r.inode(w.nid);
        expect({ p: w.path, mode: typeBits[i.kind]! | i.perm, uid: i.uid, gid: i.gid, size: BigInt(i.size), nlink: i.nlink, mtimeNs: i.mtime * 1_000_000_000n + BigInt(i.mtimeNsec), ino: BigInt(w.nid), rdev: [i.rdevMajor, i.rdevMinor] })
          .toEqual({ p: w.path, mode: k!.mode, uid: k!.uid, gid: k!.gid, size: k!.size, nlink: k!.nlink, mtimeNs: k!.mtimeNs, ino: k!.ino, rdev: [k!.rdevMajor, k!.rdevMinor] });
        const x = r.xattrs(w.nid).map((a) => [a.name, a.value.toString('hex')]).sort((a, b) => (a[0]! < b[0]! ? -1 : 1));
        expect(x, w.path).toEqual(kx.get(key) ?? []);
        if (i.kind === 'symlink') expect(r.readlink(w.nid), w.path).toEqual(k!.target);
        if (i.kind === 'dir') expect(r.readdir(w.nid).map((e) => e.name).sort((a, b) => Buffer.compare(a, b)), w.path).toEqual(k!.names);
        if (i.kind === 'file') {
          const mine = await r.readFile(w.nid, 0, i.size, devices);
          const theirs = readFileSync(Buffer.concat([Buffer.from(mnt), w.pathBytes]));
          expect(createHash('sha256').update(mine).digest('hex'), w.path).toBe(createHash('sha256').update(theirs).digest('hex'));
        }
      }
      expect([...kernel.keys()].filter((k) => !seen.has(k))).toEqual([]);
      // lookup/resolve agree with walk for a few paths.
      expect(r.resolve('/dir1/file-with-a-long-name-00299')).toBeDefined();
      expect(r.resolve('/deep/level0/level1/../level1/level2')).toBe(r.resolve('/deep/level0/level1/level2'));
    } finally {
      source.close();
      if (blobFd !== undefined) closeSync(blobFd);
    }
  }

  const variants: { name: string; args: string[]; blob: boolean; layout: string }[] = [
    { name: 'plain', args: [], blob: false, layout: 'flat-inline' },
    { name: 'chunk4k', args: ['--chunksize=4096'], blob: false, layout: 'chunk-based' },
    { name: 'chunk1m-blobdev', args: ['--chunksize=1048576'], blob: true, layout: 'chunk-based' },
  ];
  for (const v of variants) {
    it(`${v.name}: reader listing equals the loop-mounted kernel view`, async () => {
      const image = join(t.dir, `${v.name}.img`);
      const blob = v.blob ? join(t.dir, `${v.name}.blob`) : undefined;
      execFileSync('mkfs.erofs', ['-T', '1700000000', ...v.args, ...(blob ? [`--blobdev=${blob}`] : []), image, src], { stdio: 'pipe' });
      try {
        const a = losetup(image);
        loops.push(a);
        const devs: string[] = [];
        if (blob !== undefined) {
          const b = losetup(blob);
          loops.push(b);
          devs.push(b);
        }
        mountErofs(a, mnt, devs);
        mounted = true;
        await compare(image, blob);
        const source = fromFile(image);
        try {
          const r = ErofsReader.open(source);
          expect(r.inode(r.resolve('/f-10000')!).layout).toBe(v.layout);
          if (v.blob) expect(r.superblock.devices).toEqual([{ tag: '', blocks: 0, mappedBlkaddr: 0 }]);
        } finally {
          source.close();
        }
      } finally {
        if (mounted) unmount(mnt);
        mounted = false;
        for (const l of loops.splice(0)) detachLoop(l);
      }
    });
  }
});
