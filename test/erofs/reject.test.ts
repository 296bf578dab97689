/** The reader refuses what it cannot or must not read, each time with a one-line FormatError naming the problem. */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SB, SUPER_OFFSET } from '../../src/format/erofs/layout.js';
import { ErofsReader, fromBuffer } from '../../src/format/erofs/reader.js';
import { writeErofs } from '../../src/format/erofs/writer.js';
import { FormatError } from '../../src/util/errors.js';
import { haveCommand, makeTempDir, needs } from '../helpers/env.js';
import { BUILD_TIME, dir, fixChecksum, inlineFile } from './tree-gen.js';

function image(): Buffer {
  return writeErofs({ root: dir([['f', inlineFile(Buffer.from('hello'))], ['d', dir([])]]), devices: [], buildTime: BUILD_TIME, buildTimeNsec: 0 });
}

function formatError(fn: () => unknown): FormatError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(FormatError);
    expect((e as Error).message).not.toContain('\n');
    return e as FormatError;
  }
  throw new Error('expected a FormatError');
}

describe('erofs reader rejects', () => {
  it('a bad checksum, magic, unknown incompat bits, dirblkbits, truncation', () => {
    const bad = image();
    bad[4000] ^= 1;
    expect(formatError(() => ErofsReader.open(fromBuffer(bad))).message).toMatch(/bad superblock checksum/);
    const magic = image();
    magic[SUPER_OFFSET] = 0;
    expect(formatError(() => ErofsReader.open(fromBuffer(magic))).message).toMatch(/bad magic/);
    const incompat = image();
    incompat.writeUInt32LE(0x40, SUPER_OFFSET + SB.featureIncompat);
    expect(formatError(() => ErofsReader.open(fromBuffer(fixChecksum(incompat)))).message).toMatch(/unsupported incompat features 0x40/);
    const dbb = image();
    dbb[SUPER_OFFSET + SB.dirblkbits] = 1;
    expect(formatError(() => ErofsReader.open(fromBuffer(fixChecksum(dbb)))).message).toMatch(/dirblkbits 1/);
    expect(formatError(() => ErofsReader.open(fromBuffer(image().subarray(0, 1100)))).message).toMatch(/too small/);
    expect(formatError(() => ErofsReader.open(fromBuffer(image().subarray(0, 3000)))).message).toMatch(/truncated/);
  });

  it('compressed data layouts (datalayout 1 and 3)', () => {
    for (const layout of [1, 3]) {
      const img = image();
      const r = ErofsReader.open(fromBuffer(img));
      const nid = r.resolve('/f')!;
      const at = nid * 32;
      img.writeUInt16LE((img.readUInt16LE(at) & ~0xe) | (layout << 1), at);
      const r2 = ErofsReader.open(fromBuffer(fixChecksum(img)));
      expect(formatError(() => r2.inode(nid)).message).toMatch(new RegExp(`compressed data layout ${layout}`));
    }
  });

  it.skipIf(!needs('mkfs.erofs -zlz4 image', [haveCommand('mkfs.erofs'), 'mkfs.erofs']))('a real lz4-compressed mkfs.erofs image, at the compressed file', () => {
    const t = makeTempDir('erofs-lz4');
    try {
      const src = join(t.dir, 'src');
      mkdirSync(src);
      writeFileSync(join(src, 'text'), 'compressible '.repeat(20000));
      const img = join(t.dir, 'z.img');
      execFileSync('mkfs.erofs', ['-zlz4', img, src], { stdio: 'pipe' });
      const r = ErofsReader.open(fromBuffer(readFileSync(img)));
      const nid = r.resolve('/text')!;
      expect(formatError(() => r.inode(nid)).message).toMatch(/compressed data layout [13]/);
    } finally {
      t.remove();
    }
  });
});

describe('erofs reader understands newer and less common encodings', () => {
  it('NLINK_1 (i_format bit 4) and the compact inode mtime offset (+12)', () => {
    const img = image();
    const r = ErofsReader.open(fromBuffer(img));
    const nid = r.resolve('/f')!;
    const at = nid * 32;
    expect(r.inode(nid).extended).toBe(false);
    img.writeUInt16LE(img.readUInt16LE(at) | 0x10, at);
    img.writeUInt16LE(7, at + 6); // i_nb: blocks_hi in the newest format, not a link count
    img.writeUInt32LE(3600, at + 12);
    const r2 = ErofsReader.open(fromBuffer(fixChecksum(img)));
    expect(r2.inode(nid)).toMatchObject({ nlink: 1, mtime: BUILD_TIME + 3600n });
    img.writeUInt16LE(img.readUInt16LE(at) | 0x20, at);
    expect(formatError(() => ErofsReader.open(fromBuffer(fixChecksum(img))).inode(nid)).message).toMatch(/i_format bits 0x30/);
  });

  it('unified addressing: a device-0 address inside a mapped device slot belongs to that device', () => {
    const root = dir([['plain', inlineFile(Buffer.alloc(8192, 1))]]);
    const img = writeErofs({ root, devices: [{ tag: 'blob', blocks: 10 }], buildTime: BUILD_TIME, buildTimeNsec: 0 });
    const r = ErofsReader.open(fromBuffer(img));
    const nid = r.resolve('/plain')!;
    const [ext] = r.fileExtents(nid);
    expect(ext).toMatchObject({ hole: false, device: 0, length: 8192 });
    const blk = (ext as { deviceOffset: number }).deviceOffset / 4096;
    expect(blk).toBeGreaterThan(0);
    img.writeUInt32LE(blk, 9 * 128 + 68); // slot 1 mapped_blkaddr: the device starts at our file's block
    const r2 = ErofsReader.open(fromBuffer(fixChecksum(img)));
    expect(r2.superblock.devices[0]!.mappedBlkaddr).toBe(blk);
    expect(r2.fileExtents(nid)).toEqual([{ fileOffset: 0, length: 8192, hole: false, device: 1, deviceOffset: 0 }]);
  });
});
