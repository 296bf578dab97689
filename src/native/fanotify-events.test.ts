/** Event records as the kernel lays them out (fanotify-hsm.md §1): metadata, then info records. */
import { describe, expect, it } from 'vitest';
import { fileKey, handleKey, markedFileKeys, parseEvents } from './fanotify-events.js';

function event(fd: number, pid: number, range?: [number, number], extra: Buffer[] = [], mask = 0x00100000n): Buffer {
  const infos = [...extra];
  if (range) {
    const r = Buffer.alloc(24);
    r.writeUInt8(6, 0); // FAN_EVENT_INFO_TYPE_RANGE
    r.writeUInt16LE(24, 2);
    r.writeBigUInt64LE(BigInt(range[0]), 8);
    r.writeBigUInt64LE(BigInt(range[1]), 16);
    infos.push(r);
  }
  const meta = Buffer.alloc(24);
  const len = 24 + infos.reduce((n, b) => n + b.length, 0);
  meta.writeUInt32LE(len, 0);
  meta.writeUInt8(3, 4);
  meta.writeUInt16LE(24, 6);
  meta.writeBigUInt64LE(mask, 8);
  meta.writeInt32LE(fd, 16);
  meta.writeInt32LE(pid, 20);
  return Buffer.concat([meta, ...infos]);
}

describe('parseEvents', () => {
  it('reads several events with their ranges, skipping other info records', () => {
    const pidfd = Buffer.alloc(8);
    pidfd.writeUInt8(4, 0); // FAN_EVENT_INFO_TYPE_PIDFD
    pidfd.writeUInt16LE(8, 2);
    const buf = Buffer.concat([event(7, 100, [12288, 4096]), event(8, 101, [1 << 30, 8 << 20], [pidfd]), event(9, 102)]);
    expect(parseEvents(buf, buf.length)).toEqual([
      { record: 0, fd: 7, pid: 100, offset: 12288, count: 4096, ranged: true, mask: 0x00100000 },
      { record: 48, fd: 8, pid: 101, offset: 1 << 30, count: 8 << 20, ranged: true, mask: 0x00100000 },
      { record: 104, fd: 9, pid: 102, offset: 0, count: 0, ranged: false, mask: 0x00100000 },
    ]);
  });

  it('names the file of a FAN_REPORT_FID event by its handle, as name_to_handle_at gives it', () => {
    const handle = Buffer.alloc(8 + 12);
    handle.writeUInt32LE(12, 0); // handle_bytes
    handle.writeInt32LE(0x81, 4); // handle_type
    handle.write('0123456789ab', 8, 'latin1');
    const fid = Buffer.alloc(4 + 8 + handle.length + 4); // header, fsid, struct file_handle, padding
    fid.writeUInt8(1, 0); // FAN_EVENT_INFO_TYPE_FID
    fid.writeUInt16LE(fid.length, 2);
    handle.copy(fid, 12);
    const buf = event(-1, 4242, undefined, [fid], 0x2n /* FAN_MODIFY */);
    const [ev] = parseEvents(buf, buf.length);
    expect(ev).toMatchObject({ fd: -1, pid: 4242, mask: 0x2, handle: handleKey(handle) });
    expect(handleKey(handle)).toBe(`81000000${Buffer.from('0123456789ab', 'latin1').toString('hex')}`);
  });

  it('refuses a torn or foreign record instead of guessing', () => {
    const one = event(7, 1, [0, 4096]);
    expect(() => parseEvents(one, one.length - 1)).toThrow(/bad fanotify event record/);
    const old = Buffer.from(one);
    old.writeUInt8(2, 4);
    expect(() => parseEvents(old, old.length)).toThrow(/version 2/);
  });

  it('keys files by dev:ino', () => {
    expect(fileKey(2049n, 1234n)).toBe('2049:1234');
  });
});

describe('markedFileKeys', () => {
  it('gives dev:ino as stat(2) has them for every inode mark of a group fdinfo', () => {
    // As this host printed it for a file on /dev/vda (254:0), st_dev 0xfe00, st_ino 0xea20ab.
    const fdinfo = 'pos:\t0\nflags:\t02000002\nmnt_id:\t17\nino:\t1038\nfanotify flags:19 event-flags:8000\n' +
      'fanotify ino:ea20ab sdev:fe00000 mflags:0 mask:100000 ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:ab20ea003bfa10a3\n' +
      'fanotify ino:10 sdev:10300105 mflags:40 mask:100000 ignored_mask:100000 fhandle-bytes:8 fhandle-type:1 f_handle:00\n';
    expect(markedFileKeys(fdinfo)).toEqual([fileKey(0xfe00n, 0xea20abn), fileKey((259n << 8n) | 5n | (1n << 12n << 8n), 16n)]);
  });
});
