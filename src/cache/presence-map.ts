/**
 * The in-memory presence bitmap of one blob and its on-disk encoding (map-layout.ts).
 * Decoding never trusts the file: any disagreement with the expected blob returns a reason, and the
 * caller re-verifies frames from the data file instead.
 */
import { createHash } from 'node:crypto';
import { fstatSync } from 'node:fs';
import {
  MAP_CHECKSUM_SIZE, MAP_FLAG_DATA_RECORD, MAP_FLAG_OPEN, MAP_HEADER, MAP_HEADER_SIZE, MAP_MAGIC, MAP_V1_HEADER_SIZE, MAP_VERSION, mapFileSize,
} from './map-layout.js';

export interface MapIdentity {
  blobId: string;
  size: number;
  frameSize: number;
  frameCount: number;
}

export class PresenceBits {
  readonly bits: Uint8Array;
  count = 0;

  constructor(readonly frameCount: number) {
    // Shared memory so a presence view (presence-view.ts) can hand the bits to other threads.
    this.bits = new Uint8Array(new SharedArrayBuffer(Math.ceil(frameCount / 8)));
  }

  has(i: number): boolean {
    return ((this.bits[i >> 3] as number) & (1 << (i & 7))) !== 0;
  }

  set(i: number): void {
    if (this.has(i)) return;
    // Atomic: readers on other threads must see the bit only after the frame's bytes were stored.
    Atomics.or(this.bits, i >> 3, 1 << (i & 7));
    this.count++;
  }

  clear(i: number): void {
    if (!this.has(i)) return;
    this.bits[i >> 3] = (this.bits[i >> 3] as number) & ~(1 << (i & 7));
    this.count--;
  }

  clearAll(): void {
    this.bits.fill(0);
    this.count = 0;
  }

  /** True when frames first..last (inclusive) are all present. */
  hasAll(first: number, last: number): boolean {
    for (let i = first; i <= last; i++) if (!this.has(i)) return false;
    return true;
  }

  /** Indexes of present frames. */
  *present(): IterableIterator<number> {
    for (let i = 0; i < this.frameCount; i++) if (this.has(i)) yield i;
  }
}

/**
 * The data file as a clean close leaves it. Any write, truncate, chmod or replacement changes at
 * least one field (ctime cannot be set by a user), so a match means the bytes are the ones verified.
 */
export interface DataRecord {
  dev: bigint;
  ino: bigint;
  size: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
}

export function dataRecordOf(fd: number): DataRecord {
  const st = fstatSync(fd, { bigint: true });
  return { dev: st.dev, ino: st.ino, size: st.size, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs };
}

export function sameDataRecord(a: DataRecord, b: DataRecord): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs;
}

export interface EncodeExtras {
  /** Written only with a clean close (flags without MAP_FLAG_OPEN). */
  data?: DataRecord;
  /** Frames still to be re-verified: kept in the file (under MAP_FLAG_OPEN) so a crash does not lose them. */
  unverified?: PresenceBits;
}

export function encodeMap(id: MapIdentity, bits: PresenceBits, lastUsed: number, flags: number, extras: EncodeExtras = {}): Buffer {
  const buf = Buffer.alloc(mapFileSize(id.frameCount));
  const data = (flags & MAP_FLAG_OPEN) === 0 ? extras.data : undefined;
  MAP_MAGIC.copy(buf, MAP_HEADER.magic);
  buf.writeUInt32LE(MAP_VERSION, MAP_HEADER.version);
  buf.writeUInt32LE(data ? flags | MAP_FLAG_DATA_RECORD : flags & ~MAP_FLAG_DATA_RECORD, MAP_HEADER.flags);
  buf.writeBigUInt64LE(BigInt(id.size), MAP_HEADER.size);
  buf.writeUInt32LE(id.frameSize, MAP_HEADER.frameSize);
  buf.writeUInt32LE(id.frameCount, MAP_HEADER.frameCount);
  Buffer.from(id.blobId, 'hex').copy(buf, MAP_HEADER.blobId);
  buf.writeBigUInt64LE(BigInt(Math.max(0, Math.floor(lastUsed))), MAP_HEADER.lastUsed);
  buf.writeUInt32LE(bits.bits.length, MAP_HEADER.bitmapLength);
  if (data) {
    buf.writeBigUInt64LE(data.dev, MAP_HEADER.dataDev);
    buf.writeBigUInt64LE(data.ino, MAP_HEADER.dataIno);
    buf.writeBigUInt64LE(data.size, MAP_HEADER.dataSize);
    buf.writeBigUInt64LE(data.mtimeNs, MAP_HEADER.dataMtimeNs);
    buf.writeBigUInt64LE(data.ctimeNs, MAP_HEADER.dataCtimeNs);
  }
  buf.set(bits.bits, MAP_HEADER_SIZE);
  const unverified = extras.unverified;
  if (unverified && unverified.count > 0) {
    for (let k = 0; k < unverified.bits.length; k++) buf[MAP_HEADER_SIZE + k] = (buf[MAP_HEADER_SIZE + k] as number) | (unverified.bits[k] as number);
  }
  const end = MAP_HEADER_SIZE + bits.bits.length;
  createHash('sha256').update(buf.subarray(0, end)).digest().copy(buf, end);
  return buf;
}

export interface DecodedMap {
  identity: MapIdentity;
  bits: PresenceBits;
  lastUsed: number;
  flags: number;
  /** The last owner did not close the map cleanly (crash or kill). */
  unclean: boolean;
  /** The data file as the last clean close left it (absent in version 1 maps and unclean ones). */
  data?: DataRecord;
}

/** Reads a map's header fields without an expected identity (for `cache ls`). Undefined if invalid. */
export function decodeMapAny(buf: Buffer): DecodedMap | undefined {
  if (buf.length < MAP_V1_HEADER_SIZE + MAP_CHECKSUM_SIZE) return undefined;
  if (!buf.subarray(0, MAP_MAGIC.length).equals(MAP_MAGIC)) return undefined;
  const version = buf.readUInt32LE(MAP_HEADER.version);
  if (version !== MAP_VERSION && version !== 1) return undefined;
  const headerSize = version === 1 ? MAP_V1_HEADER_SIZE : MAP_HEADER_SIZE;
  const frameCount = buf.readUInt32LE(MAP_HEADER.frameCount);
  const bitmapLength = buf.readUInt32LE(MAP_HEADER.bitmapLength);
  if (bitmapLength !== Math.ceil(frameCount / 8) || buf.length !== mapFileSize(frameCount, headerSize)) return undefined;
  const end = headerSize + bitmapLength;
  const sum = createHash('sha256').update(buf.subarray(0, end)).digest();
  if (!sum.equals(buf.subarray(end, end + MAP_CHECKSUM_SIZE))) return undefined;
  const size = buf.readBigUInt64LE(MAP_HEADER.size);
  if (size > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
  const identity: MapIdentity = {
    blobId: buf.subarray(MAP_HEADER.blobId, MAP_HEADER.blobId + 32).toString('hex'),
    size: Number(size),
    frameSize: buf.readUInt32LE(MAP_HEADER.frameSize),
    frameCount,
  };
  if (identity.frameSize === 0 || Math.ceil(identity.size / identity.frameSize) !== frameCount) return undefined;
  const bits = new PresenceBits(frameCount);
  bits.bits.set(buf.subarray(headerSize, end));
  // Bits past the last frame must be zero; count the rest.
  for (let i = frameCount; i < bitmapLength * 8; i++) if (((bits.bits[i >> 3] as number) & (1 << (i & 7))) !== 0) return undefined;
  for (let i = 0; i < frameCount; i++) if (bits.has(i)) bits.count++;
  const flags = buf.readUInt32LE(MAP_HEADER.flags);
  const unclean = (flags & MAP_FLAG_OPEN) !== 0;
  const decoded: DecodedMap = { identity, bits, lastUsed: Number(buf.readBigUInt64LE(MAP_HEADER.lastUsed)), flags, unclean };
  if (version !== 1 && !unclean && (flags & MAP_FLAG_DATA_RECORD) !== 0) {
    decoded.data = {
      dev: buf.readBigUInt64LE(MAP_HEADER.dataDev),
      ino: buf.readBigUInt64LE(MAP_HEADER.dataIno),
      size: buf.readBigUInt64LE(MAP_HEADER.dataSize),
      mtimeNs: buf.readBigUInt64LE(MAP_HEADER.dataMtimeNs),
      ctimeNs: buf.readBigUInt64LE(MAP_HEADER.dataCtimeNs),
    };
  }
  return decoded;
}
/** Decodes a map for the expected blob; returns why it cannot be trusted instead of throwing. */
export function decodeMap(buf: Buffer, expected: MapIdentity): DecodedMap | { invalid: string } {
  const m = decodeMapAny(buf);
  if (!m) return { invalid: buf.length === 0 ? 'empty map' : 'bad header, length or checksum (torn or foreign write)' };
  const id = m.identity;
  if (id.blobId !== expected.blobId) return { invalid: `map names blob ${id.blobId}` };
  if (id.size !== expected.size || id.frameSize !== expected.frameSize || id.frameCount !== expected.frameCount) {
    return { invalid: `map describes ${id.size} bytes in ${id.frameCount} frames of ${id.frameSize}` };
  }
  return m;
}
