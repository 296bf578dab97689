/**
 * Seeded fuzzing of the reader: thousands of mutated images (truncations, bit flips, random bytes
 * in inode / dirent / xattr / chunk-table areas, checksum usually fixed up so the damage gets
 * past the superblock). Walking the whole tree of each must end in success or a FormatError —
 * never another exception, never a hang — and each case must finish quickly.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { FileNode } from '../../src/format/erofs/model.js';
import { ErofsReader, fromBuffer, type DeviceReader } from '../../src/format/erofs/reader.js';
import { writeErofs } from '../../src/format/erofs/writer.js';
import { FormatError } from '../../src/util/errors.js';
import { haveCommand, makeTempDir, needs } from '../helpers/env.js';
import { BUILD_TIME, dir, fixChecksum, inlineFile, randomBytes, rng } from './tree-gen.js';

const zeros: DeviceReader = { read: async (_d, _o, l) => Buffer.alloc(l) };

function smallImage(): Buffer {
  const r = rng(3);
  const shared = { name: 'user.s', value: Buffer.from('shared') };
  const chunked = (size: number): FileNode => ({
    ...inlineFile(Buffer.alloc(0)), size,
    data: { kind: 'chunks', chunkBits: 12, chunks: Array.from({ length: Math.ceil(size / 4096) }, (_, i) => (i % 3 === 2 ? null : { device: 1 + (i % 2), blkaddr: i * 7 })) },
  });
  const hl = inlineFile(Buffer.from('hard'), { xattrs: [shared] });
  const many = dir(Array.from({ length: 250 }, (_, i) => [`entry-number-${i}`, i % 10 === 0 ? dir([]) : inlineFile(randomBytes(r, i))]));
  let deep = dir([['leaf', hl]]);
  for (let i = 0; i < 8; i++) deep = dir([[`d${i}`, deep]]);
  const root = dir([
    ['a', inlineFile(randomBytes(r, 5000), { xattrs: [shared, { name: 'user.x', value: randomBytes(r, 300) }], uid: 70000 })],
    ['b', inlineFile(randomBytes(r, 4096), { mtime: 5n })],
    ['c', chunked(40_000)],
    ['hl', hl],
    ['ln', { ...inlineFile(Buffer.alloc(0)), kind: 'symlink', target: Buffer.from('a') }],
    ['ln-long', { ...inlineFile(Buffer.alloc(0)), kind: 'symlink', target: Buffer.alloc(3000, 0x62) }],
    ['dev', { ...inlineFile(Buffer.alloc(0)), kind: 'chardev', rdevMajor: 1, rdevMinor: 3 }],
    ['fifo', { ...inlineFile(Buffer.alloc(0)), kind: 'fifo' }],
    ['many', many],
    ['deep', deep],
  ], { xattrs: [shared, { name: 'trusted.overlay.opaque', value: Buffer.from('y') }] });
  return writeErofs({ root, devices: [{ tag: 'b'.repeat(64), blocks: 100 }, { tag: 'c', blocks: 100 }], buildTime: BUILD_TIME, buildTimeNsec: 0 });
}

/** Offsets worth damaging: inodes, their xattrs / tails / chunk tables, directory blocks. */
function hotspots(img: Buffer): number[] {
  const r = ErofsReader.open(fromBuffer(img));
  const out = new Set<number>([1024, 1024 + 80]);
  for (const w of r.walk()) {
    const base = r.superblock.metaBlkaddr * 4096 + w.nid * 32;
    out.add(base);
    out.add(base + 32);
    out.add(base + 64);
    if (w.kind === 'dir' || w.kind === 'symlink') for (const e of r.fileExtents(w.nid)) if (!e.hole && e.device === 0) out.add(e.deviceOffset);
  }
  return [...out];
}

/** Use the reader like the daemon would, everywhere. */
async function exercise(img: Buffer): Promise<void> {
  const r = ErofsReader.open(fromBuffer(img));
  let n = 0;
  for (const w of r.walk()) {
    if (++n > 5000) break;
    const i = r.inode(w.nid);
    r.xattrs(w.nid);
    if (i.kind === 'symlink') r.readlink(w.nid);
    if (i.kind === 'file') {
      r.fileExtents(w.nid);
      await r.readFile(w.nid, 0, 65536, zeros);
    }
    if (i.kind === 'dir') {
      const entries = r.readdir(w.nid);
      for (const e of entries.slice(0, 20)) r.lookup(w.nid, e.name);
    }
  }
  r.resolve('/many/entry-number-77');
  r.toModel();
}

async function fuzz(base: Buffer, seed: number, cases: number): Promise<{ failures: string[]; slowest: number; formatErrors: number }> {
  const r = rng(seed);
  const spots = hotspots(base);
  const failures: string[] = [];
  let slowest = 0;
  let formatErrors = 0;
  for (let c = 0; c < cases; c++) {
    const kind = Math.floor(r() * 4);
    let img = Buffer.from(base);
    if (kind === 0) {
      img = img.subarray(0, Math.floor(r() * img.length));
    } else if (kind === 1) {
      const flips = 1 + Math.floor(r() * 8);
      const limit = r() < 0.5 ? Math.min(img.length, 65536) : img.length;
      for (let k = 0; k < flips; k++) img[Math.floor(r() * limit)]! ^= 1 << Math.floor(r() * 8);
    } else {
      const at = spots[Math.floor(r() * spots.length)]! + Math.floor(r() * 48);
      const len = 1 + Math.floor(r() * (kind === 2 ? 4 : 16));
      for (let k = 0; k < len && at + k < img.length; k++) img[at + k] = Math.floor(r() * 256);
    }
    if (r() < 0.9) fixChecksum(img);
    const t0 = performance.now();
    try {
      await exercise(img);
    } catch (e) {
      if (e instanceof FormatError) formatErrors++;
      else failures.push(`case ${c} (kind ${kind}): ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
    }
    slowest = Math.max(slowest, performance.now() - t0);
  }
  return { failures, slowest, formatErrors };
}

describe('erofs reader under fuzzing', () => {
  it('survives 1500 mutations of a writer image with only FormatErrors', async () => {
    const base = smallImage();
    await exercise(base); // the pristine image is fine
    const res = await fuzz(base, 12345, 1500);
    expect(res.failures.slice(0, 3)).toEqual([]);
    expect(res.formatErrors).toBeGreaterThan(250); // the mutations do reach the parser
    expect(res.slowest).toBeLessThan(2000);
  }, 300_000);

  it.skipIf(!needs('fuzzing mkfs.erofs images', [haveCommand('mkfs.erofs'), 'mkfs.erofs']))('survives 750 mutations each of mkfs.erofs plain and block-map chunked images', async () => {
    const t = makeTempDir('erofs-fuzz');
    try {
      const src = join(t.dir, 'src');
      mkdirSync(join(src, 'sub'), { recursive: true });
      const r = rng(9);
      for (let i = 0; i < 60; i++) writeFileSync(join(src, i % 2 ? 'sub' : '', `file-${i}`), randomBytes(r, i * 150));
      execFileSync('setfattr', ['-n', 'user.k', '-v', 'v', join(src, 'file-2')]);
      for (const [name, args] of [['plain', []], ['chunk', ['--chunksize=4096']]] as const) {
        const img = join(t.dir, `${name}.img`);
        execFileSync('mkfs.erofs', ['-T', '1700000000', ...args, img, src], { stdio: 'pipe' });
        const base = readFileSync(img);
        await exercise(base);
        const res = await fuzz(base, 777, 750);
        expect(res.failures.slice(0, 3)).toEqual([]);
        expect(res.slowest).toBeLessThan(2000);
      }
    } finally {
      t.remove();
    }
  }, 300_000);
});
