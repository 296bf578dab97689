import { describe, expect, it } from 'vitest';
import { MAP_FLAG_OPEN, mapFileSize } from '../../src/cache/map-layout.js';
import { decodeMap, decodeMapAny, encodeMap, PresenceBits } from '../../src/cache/presence-map.js';

const id = { blobId: 'ab'.repeat(32), size: 13 * 4096 + 5, frameSize: 4096, frameCount: 14 };

describe('presence map encoding', () => {
  it('round-trips bits, last use and the open flag', () => {
    const bits = new PresenceBits(14);
    [0, 3, 7, 8, 13].forEach((i) => bits.set(i));
    const buf = encodeMap(id, bits, 1_700_000_000_123, MAP_FLAG_OPEN);
    expect(buf.length).toBe(mapFileSize(14));
    const m = decodeMap(buf, id);
    if ('invalid' in m) throw new Error(m.invalid);
    expect([...m.bits.present()]).toEqual([0, 3, 7, 8, 13]);
    expect(m.bits.count).toBe(5);
    expect(m.lastUsed).toBe(1_700_000_000_123);
    expect(m.unclean).toBe(true);
  });

  it('rejects every single-byte change, any truncation, and another blob', () => {
    const bits = new PresenceBits(14);
    bits.set(2);
    const buf = encodeMap(id, bits, 1, 0);
    for (let i = 0; i < buf.length; i++) {
      const b = Buffer.from(buf);
      b[i] = (b[i] as number) ^ 0x01;
      expect(decodeMapAny(b), `byte ${i}`).toBeUndefined();
    }
    for (let n = 0; n < buf.length; n += 5) expect(decodeMapAny(buf.subarray(0, n))).toBeUndefined();
    expect(decodeMap(buf, { ...id, blobId: 'cd'.repeat(32) })).toMatchObject({ invalid: expect.stringMatching(/names blob/) as unknown });
    expect(decodeMap(buf, { ...id, frameSize: 8192, frameCount: 7 })).toMatchObject({ invalid: expect.any(String) as unknown });
  });
});
