/** Model → writeErofs → ErofsReader → toModel gives the same tree, for a tree with every hard case. */
import { describe, expect, it } from 'vitest';
import { ErofsReader, fromBuffer } from '../../src/format/erofs/reader.js';
import { writeErofs } from '../../src/format/erofs/writer.js';
import type { ErofsImageSpec, FileNode } from '../../src/format/erofs/model.js';
import { FormatError } from '../../src/util/errors.js';
import { BUILD_TIME, canon, dir, hardTree, inlineFile } from './tree-gen.js';

const TAG = 'a'.repeat(64);

function spec(): ErofsImageSpec {
  let n = 0;
  // Every third non-empty file is chunk-based on device 1 (locations are arbitrary: the model only records them).
  const file = (bytes: Buffer, over: Parameters<typeof inlineFile>[1]): FileNode => {
    if (bytes.length === 0 || n++ % 3 !== 0) return inlineFile(bytes, over);
    const count = Math.ceil(bytes.length / (1 << 20));
    const chunks = Array.from({ length: count }, (_, i) => (i % 2 === 1 ? null : { device: 1, blkaddr: n * 1000 + i * 256 }));
    return { ...inlineFile(bytes, over), data: { kind: 'chunks', chunkBits: 20, chunks } };
  };
  const root = hardTree({ seed: 1, bigDir: 20_000, depth: 100, file, hugeHoles: true, acls: true });
  return { root, devices: [{ tag: TAG, blocks: 100_000 }], buildTime: BUILD_TIME, buildTimeNsec: 0, uuid: Buffer.alloc(16, 7), volumeName: 'roundtrip' };
}

describe('erofs writer/reader round trip', () => {
  const s = spec();
  const img = writeErofs(s);
  const r = ErofsReader.open(fromBuffer(img), { name: 'roundtrip' });

  it('gives back the same tree (data, links, xattrs, modes, times, chunk locations)', () => {
    const back = r.toSpec();
    expect(canon(back)).toEqual(canon(s));
    expect(back.devices).toEqual(s.devices);
    expect(back.volumeName).toBe('roundtrip');
    expect(back.uuid).toEqual(s.uuid);
  });

  it('is deterministic', () => {
    expect(writeErofs(s).equals(img)).toBe(true);
  });

  it('writes the superblock the spec asks for', () => {
    const sb = r.superblock;
    expect(sb.featureCompat).toBe(0x3);
    expect(sb.featureIncompat).toBe(0xc);
    expect(sb.devtSlotoff).toBe(9);
    expect(sb.extraDevices).toBe(1);
    expect(sb.rootNid).toBeLessThan(65536);
    expect(sb.blocks * 4096).toBe(img.length);
    expect(r.inode(r.rootNid).kind).toBe('dir');
  });

  it('sets nlink: names for hard links, 2 + subdirs for dirs', () => {
    const a = r.resolve('/names/hardlink-a')!;
    expect(r.resolve('/links/hardlink-b')).toBe(a);
    expect(r.inode(a).nlink).toBe(2);
    expect(r.inode(r.rootNid).nlink).toBe(2 + 10);
    expect(r.inode(r.resolve('/xattrs')!).nlink).toBe(2 + 1);
    expect(r.inode(r.resolve('/big')!).nlink).toBe(2 + Math.ceil(20_000 / 3) - Math.ceil(20_000 / 3000));
  });

  it('uses compact inodes when fields fit and extended ones otherwise', () => {
    expect(r.inode(r.resolve('/names/-dash')!).extended).toBe(false);
    expect(r.inode(r.resolve('/modes/big-ids')!).extended).toBe(true);
    expect(r.inode(r.resolve('/modes/old-time')!).mtime).toBe(-86400n * 365n);
    // Tails that cannot sit with a big xattr body fall back to FLAT_PLAIN (file and directory).
    expect(r.inode(r.resolve('/xattrs/xa-dir-plain')!).layout).toBe('flat-plain');
    expect(r.inode(r.resolve('/xattrs/xa-dir-plain')!).size % 4096).not.toBe(0);
    expect(r.inode(r.resolve('/files/size-4097')!).layout).toMatch(/flat-inline|chunk-based/);
    const huge = r.inode(r.resolve('/huge-holes')!);
    expect(huge.extended).toBe(true);
    expect(huge.size).toBe(5 * 2 ** 30);
  });

  it('looks names up like the kernel, including . and .. and non-UTF-8 names', () => {
    const big = r.resolve('/big')!;
    for (const i of [0, 1, 9999, 19_999]) {
      const name = Buffer.from(`entry-${String(i).padStart(6, '0')}-${'x'.repeat(i % 40)}`);
      expect(r.lookup(big, name)).toBeDefined();
    }
    expect(r.lookup(big, Buffer.from('entry-'))).toBeUndefined();
    expect(r.lookup(big, Buffer.from('zzz'))).toBeUndefined();
    expect(r.lookup(big, Buffer.from('.'))).toBe(big);
    expect(r.lookup(big, Buffer.from('..'))).toBe(r.rootNid);
    expect(r.lookup(r.resolve('/names')!, Buffer.from([0xff, 0xfe, 0x80, 0x41]))).toBeDefined();
    expect(r.resolve('/deep/d98/d97/../d97/d96')).toBeDefined();
    expect(r.resolve('/files/size-1/x')).toBeUndefined();
    expect(r.readdir(big)).toHaveLength(20_000);
    const names = r.resolve('/names')!;
    for (const e of r.readdir(names)) expect(r.lookup(names, e.name)).toBe(e.nid);
    expect(r.lookup(names, Buffer.from('.'))).toBe(names);
    expect(r.lookup(names, Buffer.from('..'))).toBe(r.rootNid);
  });

  it('reads files through extents: inline, plain blocks, chunks on devices, holes', async () => {
    const blobReads: [number, number, number][] = [];
    const devices = { read: async (d: number, o: number, l: number) => { blobReads.push([d, o, l]); return Buffer.alloc(l, 0xee); } };
    const f = r.resolve('/files/size-4097')!;
    const ext = r.fileExtents(f);
    expect(ext.reduce((a, e) => a + e.length, 0)).toBe(4097);
    const huge = r.resolve('/huge-holes')!;
    expect(r.fileExtents(huge)).toEqual([{ fileOffset: 0, length: 5 * 2 ** 30, hole: true }]);
    expect(await r.readFile(huge, 2 ** 32, 10, devices)).toEqual(Buffer.alloc(10));
    // A chunked file: device-1 ranges go to the DeviceReader, holes are zeros.
    const chunked = [...r.walk()].find((w) => w.kind === 'file' && r.inode(w.nid).layout === 'chunk-based' && w.path !== '/huge-holes' && r.inode(w.nid).size > 2 << 20)!;
    const e = r.fileExtents(chunked.nid);
    expect(e.some((x) => x.hole)).toBe(true);
    expect(e.some((x) => !x.hole && x.device === 1)).toBe(true);
    const data = await r.readFile(chunked.nid, 0, 3 << 20, devices);
    expect(data.subarray(0, 10)).toEqual(Buffer.alloc(10, 0xee));
    expect(data.subarray((1 << 20) + 5, (1 << 20) + 15)).toEqual(Buffer.alloc(10));
    expect(blobReads.every(([d]) => d === 1)).toBe(true);
  });

  it('walks every path once per name', () => {
    const paths = [...r.walk()];
    expect(paths[0]).toMatchObject({ path: '/', nid: r.rootNid });
    expect(new Set(paths.map((p) => p.pathBytes.toString('hex'))).size).toBe(paths.length);
    expect(paths.find((p) => p.path.endsWith('/d0/bottom'))?.path.split('/')).toHaveLength(102);
    expect(paths.filter((p) => p.nid === r.resolve('/names/hardlink-a'))).toHaveLength(2);
  });

  it('is fast: a 10k-inode tree in well under a second', () => {
    const big = hardTree({ seed: 2, bigDir: 10_000, depth: 10, file: inlineFile, hugeHoles: false, acls: false });
    // Best of three, in CPU time: the test machine is shared and wall time there mostly measures waiting.
    let best = Infinity;
    for (let k = 0; k < 3; k++) {
      const c0 = process.cpuUsage();
      const out = writeErofs({ root: big, devices: [], buildTime: BUILD_TIME, buildTimeNsec: 0 });
      const c = process.cpuUsage(c0);
      best = Math.min(best, (c.user + c.system) / 1000);
      expect(out.length).toBeGreaterThan(0);
    }
    expect(best).toBeLessThan(1000);
  });
});

describe('erofs writer rejects what erofs cannot hold', () => {
  const w = (root: ReturnType<typeof dir>) => () => writeErofs({ root, devices: [], buildTime: 0n, buildTimeNsec: 0 });
  it('bad names, duplicates, linked dirs, bad xattrs, bad chunks, long symlinks', () => {
    const sub = dir([]);
    expect(w(dir([['a/b', inlineFile(Buffer.alloc(1))]]))).toThrow(FormatError);
    expect(w(dir([['x'.repeat(256), inlineFile(Buffer.alloc(1))]]))).toThrow(FormatError);
    expect(w(dir([['a', sub], ['b', sub]]))).toThrow(/linked twice/);
    expect(w(dir([['a', inlineFile(Buffer.alloc(1))], ['a', inlineFile(Buffer.alloc(1))]]))).toThrow(/duplicate/);
    expect(w(dir([['a', inlineFile(Buffer.alloc(1), { xattrs: [{ name: 'weird.x', value: Buffer.alloc(1) }] })]]))).toThrow(/prefix/);
    expect(w(dir([['l', { ...inlineFile(Buffer.alloc(0)), kind: 'symlink', target: Buffer.alloc(4096, 0x61) } as never]]))).toThrow(/symlink/);
    const badChunks: FileNode = { ...inlineFile(Buffer.alloc(0)), size: 5, data: { kind: 'chunks', chunkBits: 12, chunks: [{ device: 2, blkaddr: 0 }] } };
    expect(w(dir([['c', badChunks]]))).toThrow(/device 2/);
  });
});
