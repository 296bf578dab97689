import { describe, it, expect } from 'vitest';
import {
  CACHEFILES_IOC_READ_COMPLETE, CACHEFILES_OP_CLOSE, CACHEFILES_OP_OPEN, CACHEFILES_OP_READ,
  MessageParseError, copenCommand, encodeMessage, parseMessage,
} from './messages.js';
import { fscacheMountData } from './mount-data.js';

describe('cachefiles message layout', () => {
  it('parses an OPEN byte for byte as the kernel lays it out', () => {
    // fsid "myimage", no domain: len = 32 + strlen("erofs,myimage")+1 + 7 = 53 (kernel-ondemand.md §3.3)
    const raw = Buffer.alloc(53);
    raw.writeUInt32LE(7, 0); // msg_id
    raw.writeUInt32LE(0, 4); // OPEN
    raw.writeUInt32LE(53, 8); // len
    raw.writeUInt32LE(3, 12); // object_id
    raw.writeUInt32LE(14, 16); // volume_key_size incl. NUL
    raw.writeUInt32LE(7, 20); // cookie_key_size
    raw.writeUInt32LE(42, 24); // fd
    raw.writeUInt32LE(0, 28); // flags
    raw.write('erofs,myimage\0', 32, 'latin1');
    raw.write('myimage', 46, 'latin1');
    const m = parseMessage(raw, 53);
    expect(m).toEqual({ opcode: CACHEFILES_OP_OPEN, msgId: 7, objectId: 3, volumeKey: 'erofs,myimage', cookieKey: 'myimage', fd: 42, flags: 0 });
    expect(encodeMessage(m).equals(raw)).toBe(true);
  });

  it('parses READ (u64 off/len at 16/24) and CLOSE', () => {
    const read = encodeMessage({ opcode: CACHEFILES_OP_READ, msgId: 1, objectId: 2, offset: 2 ** 33, length: 131072 });
    expect(read.length).toBe(32);
    expect(read.readBigUInt64LE(16)).toBe(2n ** 33n);
    expect(parseMessage(read, 32)).toMatchObject({ offset: 2 ** 33, length: 131072 });
    const close = encodeMessage({ opcode: CACHEFILES_OP_CLOSE, msgId: 9, objectId: 2 });
    expect(close.length).toBe(16);
    expect(parseMessage(close, 16)).toEqual({ opcode: CACHEFILES_OP_CLOSE, msgId: 9, objectId: 2 });
  });

  it('rejects a length mismatch and unknown opcodes', () => {
    const close = encodeMessage({ opcode: CACHEFILES_OP_CLOSE, msgId: 9, objectId: 2 });
    expect(() => parseMessage(close, 15)).toThrow(MessageParseError);
    close.writeUInt32LE(7, 4);
    expect(() => parseMessage(close, 16)).toThrow(/opcode 7/);
  });

  it('formats replies and mount data as the kernel parses them', () => {
    expect(CACHEFILES_IOC_READ_COMPLETE).toBe(0x40049801);
    expect(copenCommand(5, 5009408)).toBe('copen 5,5009408');
    expect(copenCommand(5, -2)).toBe('copen 5,-2');
    expect(fscacheMountData({ fsid: 'img1', domainId: 'dom', devices: ['b1', 'b2'] })).toBe('fsid=img1,domain_id=dom,device=b1,device=b2');
    expect(() => fscacheMountData({ fsid: 'a/b' })).toThrow(/invalid fscache key/);
  });
});
