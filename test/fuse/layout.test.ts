/** The FUSE struct layouts against the sizes and offsets of include/uapi/linux/fuse.h. */
import { describe, it, expect } from 'vitest';
import {
  ATTR_OUT_SIZE, ENTRY_OUT_SIZE, FUSE_DEV_IOC_BACKING_CLOSE, FUSE_DEV_IOC_BACKING_OPEN, FUSE_DEV_IOC_CLONE,
  IN_HEADER_SIZE, INIT_OUT_SIZE, InHeaderOffset, InitFlag, InitFlag2, KSTATFS_SIZE, OUT_HEADER_SIZE, Opcode, READ_IN_COMPAT_SIZE,
  ReadInOffset, S_IFDIR, S_IFREG, decodeBatchForgetIn, decodeInHeader, decodeInitIn, decodeReadIn, direntSize, direntType,
  encodeAttrOut, encodeEntryOut, encodeInitOut, encodeOpenOut, encodeOutHeader, encodeStatfsOut, writeDirent, writeOutHeader,
} from '../../src/fuse/layout.js';

/** _IOC(dir, type, nr, size) as the kernel computes it. */
const ioc = (dir: number, type: number, nr: number, size: number): number => ((dir << 30) | (size << 16) | (type << 8) | nr) >>> 0;

describe('FUSE layout', () => {
  it('has the kernel ioctl numbers', () => {
    expect(FUSE_DEV_IOC_CLONE).toBe(ioc(2, 229, 0, 4));
    expect(FUSE_DEV_IOC_BACKING_OPEN).toBe(ioc(1, 229, 1, 16));
    expect(FUSE_DEV_IOC_BACKING_CLOSE).toBe(ioc(1, 229, 2, 4));
  });

  it('decodes fuse_in_header and request bodies', () => {
    const b = Buffer.alloc(40 + 40);
    b.writeUInt32LE(80, 0);
    b.writeUInt32LE(15, 4);
    b.writeBigUInt64LE(0x1234567890n, 8);
    b.writeBigUInt64LE(7n, 16);
    b.writeUInt32LE(1000, 24);
    b.writeUInt32LE(100, 28);
    b.writeUInt32LE(4242, 32);
    b.writeBigUInt64LE(9n, 40); // fh
    b.writeBigUInt64LE(1n << 40n, 48); // offset
    b.writeUInt32LE(131072, 56);
    expect(decodeInHeader(b)).toEqual({ len: 80, opcode: 15, unique: 0x1234567890n, nodeid: 7, uid: 1000, gid: 100, pid: 4242 });
    expect(decodeReadIn(b.subarray(40))).toEqual({ fh: 9n, offset: 2 ** 40, size: 131072 });
    // The offsets the reader thread reads a READ with, without decoding it.
    expect(b.readUInt32LE(InHeaderOffset.OPCODE)).toBe(Opcode.READ);
    expect(b.readBigUInt64LE(InHeaderOffset.UNIQUE)).toBe(0x1234567890n);
    expect(b.readBigUInt64LE(InHeaderOffset.NODEID)).toBe(7n);
    expect(b.readBigUInt64LE(IN_HEADER_SIZE + ReadInOffset.OFFSET)).toBe(1n << 40n);
    expect(b.readUInt32LE(IN_HEADER_SIZE + ReadInOffset.SIZE)).toBe(131072);
    expect(ReadInOffset.SIZE + 4).toBeLessThanOrEqual(READ_IN_COMPAT_SIZE);

    const init = Buffer.alloc(64);
    init.writeUInt32LE(7, 0);
    init.writeUInt32LE(44, 4);
    init.writeUInt32LE(1 << 20, 8);
    init.writeUInt32LE(InitFlag.ASYNC_READ | InitFlag.INIT_EXT, 12);
    init.writeUInt32LE(InitFlag2.PASSTHROUGH, 16);
    expect(decodeInitIn(init)).toEqual({ major: 7, minor: 44, maxReadahead: 1 << 20, flags: InitFlag.ASYNC_READ | InitFlag.INIT_EXT, flags2: 32 });
    init.writeUInt32LE(InitFlag.ASYNC_READ, 12); // without INIT_EXT, flags2 is not there
    expect(decodeInitIn(init).flags2).toBe(0);

    const bf = Buffer.alloc(8 + 32);
    bf.writeUInt32LE(2, 0);
    bf.writeBigUInt64LE(5n, 8);
    bf.writeBigUInt64LE(3n, 16);
    bf.writeBigUInt64LE(6n, 24);
    bf.writeBigUInt64LE(1n, 32);
    expect(decodeBatchForgetIn(bf)).toEqual([{ nodeid: 5, nlookup: 3 }, { nodeid: 6, nlookup: 1 }]);
  });

  it('encodes replies at the kernel offsets', () => {
    const h = encodeOutHeader(16, -2, 77n);
    expect([h.readUInt32LE(0), h.readInt32LE(4), h.readBigUInt64LE(8)]).toEqual([16, -2, 77n]);
    const reply = Buffer.alloc(OUT_HEADER_SIZE + 8, 0xff);
    writeOutHeader(reply, 24, 0, 78n);
    expect([reply.readUInt32LE(0), reply.readInt32LE(4), reply.readBigUInt64LE(8), reply.readUInt32LE(16)]).toEqual([24, 0, 78n, 0xffffffff]);

    const attr = { ino: 9, size: 5000, mode: S_IFREG | 0o644, nlink: 1, uid: 3, gid: 4, mtime: 10.25 };
    const e = encodeEntryOut(9, 0, 86400.5, 60, attr);
    expect(e.length).toBe(ENTRY_OUT_SIZE);
    expect(ENTRY_OUT_SIZE).toBe(128);
    expect(e.readBigUInt64LE(0)).toBe(9n);
    expect(e.readBigUInt64LE(16)).toBe(86400n);
    expect(e.readUInt32LE(32)).toBe(500_000_000);
    expect(e.readBigUInt64LE(40)).toBe(9n); // attr.ino
    expect(e.readBigUInt64LE(48)).toBe(5000n); // attr.size
    expect(e.readBigUInt64LE(56)).toBe(10n); // attr.blocks
    expect(e.readBigUInt64LE(72)).toBe(10n); // attr.mtime
    expect(e.readUInt32LE(92)).toBe(250_000_000); // attr.mtimensec
    expect(e.readUInt32LE(100)).toBe(S_IFREG | 0o644); // attr.mode
    expect(e.readUInt32LE(108)).toBe(3); // attr.uid

    const a = encodeAttrOut(1, attr);
    expect(a.length).toBe(ATTR_OUT_SIZE);
    expect(a.readUInt32LE(16 + 60)).toBe(S_IFREG | 0o644);

    const o = encodeOpenOut(5n, 1 << 7, 3);
    expect([o.readBigUInt64LE(0), o.readUInt32LE(8), o.readInt32LE(12)]).toEqual([5n, 128, 3]);

    const i = encodeInitOut({ major: 7, minor: 40, maxReadahead: 1, flags: InitFlag.INIT_EXT, maxBackground: 64, congestionThreshold: 48, maxWrite: 131072, timeGran: 1, maxPages: 256, flags2: 32, maxStackDepth: 1 });
    expect(i.length).toBe(INIT_OUT_SIZE);
    expect([i.readUInt32LE(12), i.readUInt16LE(16), i.readUInt32LE(20), i.readUInt16LE(28), i.readUInt32LE(32), i.readUInt32LE(36)])
      .toEqual([InitFlag.INIT_EXT, 64, 131072, 256, 32, 1]);

    const s = encodeStatfsOut({ blocks: 1, bfree: 2, bavail: 3, files: 4, ffree: 5, bsize: 4096, namelen: 255, frsize: 512 });
    expect(s.length).toBe(KSTATFS_SIZE);
    expect([s.readUInt32LE(40), s.readUInt32LE(44), s.readUInt32LE(48)]).toEqual([4096, 255, 512]);
  });

  it('writes padded dirents', () => {
    const name = Buffer.from('hello');
    expect(direntSize(5)).toBe(32);
    expect(direntSize(8)).toBe(32);
    expect(direntSize(9)).toBe(40);
    const b = Buffer.alloc(64, 0xff);
    expect(writeDirent(b, 0, 12, 3, direntType(S_IFDIR), name)).toBe(32);
    expect([b.readBigUInt64LE(0), b.readBigUInt64LE(8), b.readUInt32LE(16), b.readUInt32LE(20)]).toEqual([12n, 3n, 5, 4]);
    expect(b.toString('utf8', 24, 29)).toBe('hello');
    expect(b.subarray(29, 32).every((x) => x === 0)).toBe(true);
  });
});
