/** Every struct codec round-trips, sits where layout.ts says, and the CRC32C matches known values and mkfs.erofs. */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeChunkIndex, encodeChunkIndex } from '../../src/format/erofs/chunk-index.js';
import { crc32c, crc32cUpdate, superblockChecksum } from '../../src/format/erofs/crc32c.js';
import { decodeDeviceSlot, encodeDeviceSlot } from '../../src/format/erofs/device-slot.js';
import { decodeDirent, encodeDirent } from '../../src/format/erofs/dirent.js';
import { decodeInodeCore, decodeRdev, encodeInodeCore, encodeRdev, type InodeCore } from '../../src/format/erofs/inode-core.js';
import { DEFAULT_DEVT_SLOTOFF, IC, IE, SB, SUPER_OFFSET, XATTR_PREFIXES, xattrIbodySize } from '../../src/format/erofs/layout.js';
import { decodeSuperblock, encodeSuperblock, type SuperblockFields } from '../../src/format/erofs/superblock.js';
import { decodeXattrEntryHead, encodeXattrEntry, joinXattrName, splitXattrName, xattrEntrySize } from '../../src/format/erofs/xattr-entry.js';
import { haveCommand, makeTempDir, needs } from '../helpers/env.js';

describe('erofs struct codecs', () => {
  it('superblock', () => {
    const sb: SuperblockFields = {
      magic: 0xe0f5e1e2, checksum: 0x94145f0e, featureCompat: 3, blkszbits: 12, sbExtslots: 0, rootNid: 37, inos: 316n,
      buildTime: 1_700_000_000n, buildTimeNsec: 5, blocks: 743, metaBlkaddr: 1, xattrBlkaddr: 2, uuid: Buffer.alloc(16, 0x11),
      volumeName: Buffer.from('vol\0\0\0\0\0\0\0\0\0\0\0\0\0'), featureIncompat: 0xc, u1: 0, extraDevices: 1, devtSlotoff: 9,
      dirblkbits: 0, xattrPrefixCount: 0, xattrPrefixStart: 0, packedNid: 0n,
    };
    const buf = Buffer.alloc(200, 0xaa);
    encodeSuperblock(sb, buf, 10);
    expect(decodeSuperblock(buf, 10)).toEqual(sb);
    // Spot-check offsets against the mkfs hex dump in the spec (§2).
    expect(buf.subarray(10, 14)).toEqual(Buffer.from('e2e1f5e0', 'hex'));
    expect(buf.readUInt16LE(10 + SB.rootNid)).toBe(37);
    expect(buf.readUInt32LE(10 + 0x24)).toBe(743);
    expect(buf.readUInt16LE(10 + 0x58 - 0x00)).toBe(9);
    expect(buf[10 + 128]).toBe(0xaa);
    expect(DEFAULT_DEVT_SLOTOFF).toBe(9);
  });

  it('inode cores, compact and extended', () => {
    const compact: InodeCore = { extended: false, datalayout: 2, formatExtra: 0, xattrIcount: 11, mode: 0o100644, nlink: 2, size: 10000, u: 0xffffffff, ino: 5, uid: 1000, gid: 65535, mtime: 0n, mtimeNsec: 0 };
    const ext: InodeCore = { extended: true, datalayout: 4, formatExtra: 0, xattrIcount: 0, mode: 0o40755, nlink: 70000, size: 5 * 2 ** 30, u: 0x28, ino: 9, uid: 100000, gid: 4_000_000_000, mtime: -5n, mtimeNsec: 999_999_999 };
    for (const c of [compact, ext]) {
      const buf = Buffer.alloc(64);
      encodeInodeCore(c, buf, 0);
      expect(decodeInodeCore(buf, 0)).toEqual(c);
    }
    const buf = Buffer.alloc(64);
    encodeInodeCore(ext, buf, 0);
    expect(buf.readUInt16LE(IE.format)).toBe(1 | (4 << 1));
    expect(buf.readUInt32LE(IE.nlink)).toBe(70000);
    expect(buf.readBigInt64LE(IE.mtime)).toBe(-5n);
    encodeInodeCore(compact, buf, 0);
    expect(buf.readUInt16LE(IC.format)).toBe(2 << 1);
    expect(buf.readUInt16LE(IC.gid)).toBe(65535);
    expect(xattrIbodySize(11)).toBe(52); // §11: 12 header + 4 id + 36 entry
  });

  it('rdev uses new_encode_dev', () => {
    expect(encodeRdev(8, 1)).toBe(0x801);
    expect(encodeRdev(1, 3)).toBe(0x103);
    expect(encodeRdev(0, 0)).toBe(0);
    for (const [ma, mi] of [[259, 70000], [4095, 0xfffff], [1, 256]] as const) expect(decodeRdev(encodeRdev(ma, mi))).toEqual({ major: ma, minor: mi });
  });

  it('dirent, chunk index, device slot', () => {
    const b = Buffer.alloc(128);
    encodeDirent({ nid: 123456789012n, nameoff: 1212, fileType: 7 }, b, 0);
    expect(decodeDirent(b, 0)).toEqual({ nid: 123456789012n, nameoff: 1212, fileType: 7 });
    encodeChunkIndex({ advise: 0, deviceId: 1, blkaddr: 256 }, b, 0);
    expect(b.subarray(0, 8)).toEqual(Buffer.from('0000010000010000', 'hex')); // spec §13 raw bytes
    expect(decodeChunkIndex(b, 0)).toEqual({ advise: 0, deviceId: 1, blkaddr: 256 });
    const tag = Buffer.from('f'.repeat(64));
    encodeDeviceSlot({ tag, blocks: 739, mappedBlkaddr: 0 }, b, 0);
    expect(decodeDeviceSlot(b, 0)).toEqual({ tag, blocks: 739, mappedBlkaddr: 0 });
    encodeDeviceSlot({ tag: Buffer.from('short'), blocks: 1, mappedBlkaddr: 7 }, b, 0);
    expect(decodeDeviceSlot(b, 0)).toEqual({ tag: Buffer.from('short'), blocks: 1, mappedBlkaddr: 7 });
  });

  it('xattr names and entries', () => {
    expect(splitXattrName('trusted.overlay.opaque')).toEqual({ index: 4, suffix: Buffer.from('overlay.opaque') });
    expect(splitXattrName('system.posix_acl_default')).toEqual({ index: 3, suffix: Buffer.alloc(0) });
    expect(splitXattrName('system.posix_acl_accessX')).toBeUndefined();
    expect(splitXattrName('os2.x')).toBeUndefined();
    for (const p of XATTR_PREFIXES) expect(joinXattrName(p.index, Buffer.from(''))).toBe(p.prefix);
    expect(joinXattrName(5, Buffer.from('x'))).toBeUndefined();
    const key = splitXattrName('security.capability')!;
    const value = Buffer.alloc(20, 1);
    const b = Buffer.alloc(64, 0xcc);
    expect(encodeXattrEntry(key, value, b, 0)).toBe(36);
    expect(xattrEntrySize(10, 20)).toBe(36);
    expect(decodeXattrEntryHead(b, 0)).toEqual({ nameLen: 10, nameIndex: 6, valueSize: 20 });
    expect(b.subarray(34, 36)).toEqual(Buffer.alloc(2)); // padding zeroed
  });
});

describe('crc32c', () => {
  it('matches the standard check value and the kernel formulation', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    const region = Buffer.alloc(3072);
    for (let i = 0; i < region.length; i++) region[i] = (i * 7) & 0xff;
    region.writeUInt32LE(0xe0f5e1e2, 0);
    // Newest kernels: crc32c(0x5045B54A, bytes after the checksum field) (spec §12).
    expect(superblockChecksum(region)).toBe(crc32cUpdate(0x5045b54a, region.subarray(8)));
    expect(superblockChecksum(region)).toBe((~crc32c(Buffer.concat([region.subarray(0, 4), Buffer.alloc(4), region.subarray(8)]))) >>> 0);
  });

  it.skipIf(!needs('crc32c against mkfs.erofs', [haveCommand('mkfs.erofs'), 'mkfs.erofs']))('matches images made by mkfs.erofs', () => {
    const t = makeTempDir('erofs-crc');
    try {
      for (let k = 0; k < 3; k++) {
        const src = join(t.dir, `src${k}`);
        mkdirSync(src);
        writeFileSync(join(src, 'f'), Buffer.alloc(k * 5000, 1));
        const img = join(t.dir, `${k}.img`);
        execFileSync('mkfs.erofs', ['-T', String(1_700_000_000 + k), img, src], { stdio: 'ignore' });
        const b = readFileSync(img);
        expect(b.readUInt32LE(SUPER_OFFSET + 8) & 1).toBe(1);
        expect(superblockChecksum(b.subarray(SUPER_OFFSET, 4096))).toBe(b.readUInt32LE(SUPER_OFFSET + SB.checksum));
      }
    } finally {
      t.remove();
    }
  });
});
