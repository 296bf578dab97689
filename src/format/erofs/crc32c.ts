/**
 * CRC32C (Castagnoli, reflected polynomial 0x82F63B78), table-driven, and the erofs superblock
 * checksum (§12): raw CRC32C with init 0xFFFFFFFF and NO final xor over the superblock block with
 * the checksum field zeroed.
 */
import { SB, SUPER_OFFSET } from './layout.js';

const POLY = 0x82f63b78;

/** 8 tables of 256 entries for slice-by-8: table[k][b] = CRC of byte b followed by k zero bytes. */
const TABLES: Uint32Array[] = (() => {
  const t: Uint32Array[] = [];
  const t0 = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    t0[i] = c >>> 0;
  }
  t.push(t0);
  for (let k = 1; k < 8; k++) {
    const prev = t[k - 1]!;
    const cur = new Uint32Array(256);
    for (let i = 0; i < 256; i++) cur[i] = (t0[prev[i]! & 0xff]! ^ (prev[i]! >>> 8)) >>> 0;
    t.push(cur);
  }
  return t;
})();

/** Update a raw CRC32C state (no pre/post inversion) with `data`. */
export function crc32cUpdate(state: number, data: Uint8Array): number {
  const [t0, t1, t2, t3, t4, t5, t6, t7] = TABLES as [Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array];
  let c = state >>> 0;
  let i = 0;
  const n = data.length;
  for (; i + 8 <= n; i += 8) {
    const lo = (c ^ (data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24))) >>> 0;
    c =
      t7[lo & 0xff]! ^ t6[(lo >>> 8) & 0xff]! ^ t5[(lo >>> 16) & 0xff]! ^ t4[lo >>> 24]! ^
      t3[data[i + 4]!]! ^ t2[data[i + 5]!]! ^ t1[data[i + 6]!]! ^ t0[data[i + 7]!]!;
  }
  for (; i < n; i++) c = t0[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return c >>> 0;
}

/** The standard CRC-32C (check value of "123456789" is 0xE3069283). */
export function crc32c(data: Uint8Array): number {
  return (crc32cUpdate(0xffffffff, data) ^ 0xffffffff) >>> 0;
}

/** Byte range [start, end) of device 0 the superblock checksum covers. */
export function checksumRange(blksz: number): { start: number; end: number } {
  return blksz > SUPER_OFFSET ? { start: SUPER_OFFSET, end: blksz } : { start: SUPER_OFFSET, end: SUPER_OFFSET + blksz };
}

/**
 * The superblock checksum of `region` = bytes [start, end) of device 0 (superblock first), computed
 * as if the checksum field were zero. `region` itself is not modified.
 */
export function superblockChecksum(region: Uint8Array): number {
  const head = Buffer.from(region.subarray(0, SB.checksum + 4));
  head.writeUInt32LE(0, SB.checksum);
  return crc32cUpdate(crc32cUpdate(0xffffffff, head), region.subarray(SB.checksum + 4));
}
