/** Event records as the kernel lays them out (fanotify-hsm.md §1): metadata, then info records. */
import { describe, expect, it } from 'vitest';
import { fileKey, parseEvents } from './events.js';

function event(fd: number, pid: number, range?: [number, number], extra: Buffer[] = []): Buffer {
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
  meta.writeBigUInt64LE(0x00100000n, 8);
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
      { fd: 7, pid: 100, offset: 12288, count: 4096, ranged: true },
      { fd: 8, pid: 101, offset: 1 << 30, count: 8 << 20, ranged: true },
      { fd: 9, pid: 102, offset: 0, count: 0, ranged: false },
    ]);
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
