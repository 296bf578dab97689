/**
 * Test trees for erofs: a seeded generator of models with every hard case, plus a canonical form
 * that compares two trees including hard-link identity (test-only helpers).
 */
import { createHash } from 'node:crypto';
import { checksumRange, superblockChecksum } from '../../src/format/erofs/crc32c.js';
import { SB, SUPER_OFFSET } from '../../src/format/erofs/layout.js';
import type { DirNode, ErofsImageSpec, ErofsNode, FileNode, Xattr } from '../../src/format/erofs/model.js';

/** Small deterministic PRNG (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomBytes(r: () => number, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  let i = 0;
  for (; i + 4 <= n; i += 4) b.writeUInt32LE(Math.floor(r() * 4294967296), i);
  for (; i < n; i++) b[i] = Math.floor(r() * 256);
  return b;
}

export const BUILD_TIME = 1_700_000_000n;
const base = (over: Partial<{ perm: number; uid: number; gid: number; mtime: bigint; mtimeNsec: number; xattrs: Xattr[] }> = {}) => ({
  perm: 0o644, uid: 0, gid: 0, mtime: BUILD_TIME, mtimeNsec: 0, xattrs: [] as Xattr[], ...over,
});

export function dir(entries: [string | Buffer, ErofsNode][], over: Parameters<typeof base>[0] = {}): DirNode {
  return { ...base({ perm: 0o755, ...over }), kind: 'dir', entries: entries.map(([n, node]) => ({ name: Buffer.isBuffer(n) ? n : Buffer.from(n), node })) };
}

export function inlineFile(bytes: Buffer, over: Parameters<typeof base>[0] = {}): FileNode {
  return { ...base(over), kind: 'file', size: bytes.length, data: { kind: 'inline', bytes } };
}

/** POSIX ACL xattr value: user::rw- user:1000:r-- group::r-- mask::r-- other::r-- */
export const ACL_VALUE = (() => {
  const e: [number, number, number][] = [[0x01, 6, 0xffffffff], [0x02, 4, 1000], [0x04, 4, 0xffffffff], [0x10, 4, 0xffffffff], [0x20, 4, 0xffffffff]];
  const b = Buffer.alloc(4 + 8 * e.length);
  b.writeUInt32LE(2, 0);
  e.forEach(([tag, perm, id], i) => {
    b.writeUInt16LE(tag, 4 + 8 * i);
    b.writeUInt16LE(perm, 6 + 8 * i);
    b.writeUInt32LE(id, 8 + 8 * i);
  });
  return b;
})();

export const CAP_VALUE = Buffer.from('0000000200200000000000000000000000000000', 'hex'); // v2, cap_net_bind_service

export interface HardTreeOptions {
  seed: number;
  /** Entries in the big directory (20 000 for the round trip). */
  bigDir: number;
  /** Nesting depth. */
  depth: number;
  /** Make a regular file's data: inline bytes or chunks (the kernel test places chunks in a blob). */
  file: (bytes: Buffer, over: Parameters<typeof base>[0]) => FileNode;
  /** Add the 5 GiB all-hole file (chunk-based). */
  hugeHoles: boolean;
  /** Also ACL xattrs (valid ones). */
  acls: boolean;
}

/** A tree with all the hard cases of the erofs writer. */
export function hardTree(o: HardTreeOptions): DirNode {
  const r = rng(o.seed);
  const MiB = 1 << 20;
  const shared: Xattr = { name: 'user.shared', value: Buffer.from('same everywhere') };
  const files: [string | Buffer, ErofsNode][] = [];
  for (const size of [0, 1, 4095, 4096, 4097, 10000, MiB - 1, MiB, MiB + 1]) {
    files.push([`size-${size}`, o.file(randomBytes(r, size), { mtime: BUILD_TIME + BigInt(size), mtimeNsec: size % 1_000_000_000 })]);
  }
  files.push(['zeros-3m', o.file(Buffer.alloc(3 * MiB), {})]);
  const mixed = Buffer.concat([randomBytes(r, MiB), Buffer.alloc(2 * MiB), randomBytes(r, 12345)]);
  files.push(['sparse-mixed', o.file(mixed, { xattrs: [shared] })]);

  const linked = o.file(Buffer.from('linked content\n'), { perm: 0o600, xattrs: [shared] });
  const modes: [string, ErofsNode][] = [
    ['setuid', o.file(Buffer.from('#!/bin/sh\n'), { perm: 0o4755 })],
    ['setgid', o.file(Buffer.from('x'), { perm: 0o2755 })],
    ['sticky-dir', dir([], { perm: 0o1777 })],
    ['mode-0000', o.file(Buffer.from('secret'), { perm: 0 })],
    ['big-ids', o.file(Buffer.from('ids'), { uid: 100000, gid: 4_000_000_000 })],
    ['old-time', o.file(Buffer.from('old'), { mtime: -86400n * 365n, mtimeNsec: 5 })],
    ['future-time', o.file(Buffer.from('future'), { mtime: 4_000_000_000n, mtimeNsec: 999_999_999 })],
  ];
  const xattrFiles: [string, ErofsNode][] = [
    ['xa-user', o.file(Buffer.from('u'), { xattrs: [{ name: 'user.foo', value: Buffer.from('bar') }, shared] })],
    ['xa-cap', o.file(Buffer.from('c'), { perm: 0o755, xattrs: [{ name: 'security.capability', value: CAP_VALUE }, shared] })],
    ['xa-big', o.file(Buffer.from('b'), { xattrs: [{ name: 'user.big', value: randomBytes(r, 3000) }, { name: 'user.empty', value: Buffer.alloc(0) }] })],
    ['xa-many', o.file(Buffer.from('m'), { xattrs: Array.from({ length: 120 }, (_, i) => ({ name: `user.attr${i}`, value: Buffer.from(`value-${i}`.repeat(i % 5 + 1)) })) })],
    ['xa-shared-2', o.file(Buffer.from('s'), { xattrs: [shared, { name: 'trusted.other', value: Buffer.from('t') }] })],
  ];
  // Big xattr body + tail that cannot share one block: the writer falls back to FLAT_PLAIN.
  const bigX = { name: 'user.bulky', value: randomBytes(r, 3000) };
  xattrFiles.push(['xa-big-tail', o.file(randomBytes(r, 6000), { xattrs: [{ name: 'user.bulky', value: randomBytes(r, 3000) }] })]);
  xattrFiles.push(['xa-dir-plain', dir(Array.from({ length: 60 }, (_, i): [string, ErofsNode] => [`child-with-a-longish-name-${i}`, o.file(Buffer.from(String(i)), {})]), { xattrs: [bigX] })]);
  if (o.acls) xattrFiles.push(['xa-acl', o.file(Buffer.from('a'), { xattrs: [{ name: 'system.posix_acl_access', value: ACL_VALUE }] })]);

  const links: [string, ErofsNode][] = [
    ['rel', { ...base({ perm: 0o777 }), kind: 'symlink', target: Buffer.from('../files/size-1') }],
    ['abs', { ...base({ perm: 0o777 }), kind: 'symlink', target: Buffer.from('/etc/passwd') }],
    ['dangling', { ...base({ perm: 0o777 }), kind: 'symlink', target: Buffer.from('nowhere/at/all') }],
    ['long-4000', { ...base({ perm: 0o777 }), kind: 'symlink', target: Buffer.from('d/'.repeat(2000)) }],
    ['long-4095', { ...base({ perm: 0o777, mtime: 7n }), kind: 'symlink', target: Buffer.alloc(4095, 0x61) }],
  ];
  const specials: [string, ErofsNode][] = [
    ['null', { ...base({ perm: 0o666 }), kind: 'chardev', rdevMajor: 1, rdevMinor: 3 }],
    ['whiteout', { ...base({ perm: 0 }), kind: 'chardev', rdevMajor: 0, rdevMinor: 0 }],
    ['sda1', { ...base({ perm: 0o660, gid: 6 }), kind: 'blockdev', rdevMajor: 8, rdevMinor: 1 }],
    ['bigdev', { ...base(), kind: 'blockdev', rdevMajor: 259, rdevMinor: 70000 }],
    ['fifo', { ...base(), kind: 'fifo' }],
    ['socket', { ...base({ perm: 0o755 }), kind: 'socket' }],
  ];
  const names: [string | Buffer, ErofsNode][] = [
    ['n'.repeat(255), o.file(Buffer.from('255'), {})],
    [Buffer.from([0xff, 0xfe, 0x80, 0x41]), o.file(Buffer.from('latin'), {})],
    [Buffer.from('ünïcødé-名前'), o.file(Buffer.from('utf8'), {})],
    ['!bang', o.file(Buffer.from('!'), {})],
    ['-dash', o.file(Buffer.from('-'), {})],
    ['.hidden', o.file(Buffer.from('.'), {})],
    ['.-between-dots', o.file(Buffer.from('.-'), {})], // sorts between "." and ".."
    ['hardlink-a', linked],
  ];
  const big: [string, ErofsNode][] = [];
  const tiny = o.file(Buffer.alloc(0), {});
  for (let i = 0; i < o.bigDir; i++) big.push([`entry-${String(i).padStart(6, '0')}-${'x'.repeat(i % 40)}`, i % 1000 === 0 ? o.file(Buffer.from(`f${i}`), {}) : i % 3 === 0 ? dir([]) : tiny]);
  let deep: DirNode = dir([['bottom', o.file(Buffer.from('deep'), {})]]);
  for (let i = 0; i < o.depth - 1; i++) deep = dir([[`d${i}`, deep]]);

  const root: [string | Buffer, ErofsNode][] = [
    ['files', dir(files)], ['modes', dir(modes)], ['xattrs', dir(xattrFiles, { xattrs: [{ name: 'trusted.overlay.opaque', value: Buffer.from('y') }] })],
    ['links', dir([...links, ['hardlink-b', linked]])], ['specials', dir(specials)], ['names', dir(names)],
    ['big', dir(big)], ['deep', deep], ['empty', dir([])], ['empty2', dir([], { uid: 70000, mtime: 1n })],
  ];
  if (o.hugeHoles) {
    const huge: FileNode = { ...base(), kind: 'file', size: 5 * 1024 * MiB, data: { kind: 'chunks', chunkBits: 20, chunks: new Array<null>(5 * 1024).fill(null) } };
    root.push(['huge-holes', huge]);
  }
  return dir(root, { xattrs: [{ name: 'user.root', value: Buffer.from('r') }] });
}

/** Canonical JSON-able form: sorted entries and xattrs, hashed data, link identity as first-seen ids. */
export function canon(spec: Pick<ErofsImageSpec, 'root'>): unknown {
  const ids = new Map<ErofsNode, number>();
  const h = (b: Buffer): string => (b.length <= 64 ? b.toString('hex') : createHash('sha256').update(b).digest('hex') + `/${b.length}`);
  const node = (n: ErofsNode): unknown => {
    const common = {
      kind: n.kind, perm: n.perm, uid: n.uid, gid: n.gid, mtime: n.mtime.toString(), nsec: n.mtimeNsec,
      xattrs: n.xattrs.map((x) => [x.name, h(x.value)]).sort((a, b) => (a[0]! < b[0]! ? -1 : a[0]! > b[0]! ? 1 : 0)),
    };
    if (n.kind !== 'dir') {
      const seen = ids.get(n);
      if (seen !== undefined) return { link: seen };
      ids.set(n, ids.size);
    }
    switch (n.kind) {
      case 'dir':
        return { ...common, entries: n.entries.slice().sort((a, b) => Buffer.compare(a.name, b.name)).map((e) => [e.name.toString('hex'), node(e.node)]) };
      case 'file':
        return { ...common, id: ids.get(n), size: n.size, data: n.data.kind === 'inline' ? h(n.data.bytes) : n.data };
      case 'symlink':
        return { ...common, id: ids.get(n), target: h(n.target) };
      case 'chardev':
      case 'blockdev':
        return { ...common, id: ids.get(n), rdev: [n.rdevMajor, n.rdevMinor] };
      default:
        return { ...common, id: ids.get(n) };
    }
  };
  return node(spec.root);
}

/** Recompute the superblock checksum of a (mutated) 4 KiB-block image in place. */
export function fixChecksum(img: Buffer): Buffer {
  const { start, end } = checksumRange(4096);
  if (img.length >= end) img.writeUInt32LE(superblockChecksum(img.subarray(start, end)), SUPER_OFFSET + SB.checksum);
  return img;
}
