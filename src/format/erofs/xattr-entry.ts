/** xattr names ↔ (prefix index, suffix), and encode/decode of the xattr header and entries (§11). */
import {
  XATTR_ALIGN, XATTR_ENTRY, XATTR_ENTRY_SIZE, XATTR_HEADER, XATTR_HEADER_SIZE, XATTR_PREFIXES,
} from './layout.js';

export interface XattrKey {
  index: number;
  /** Name without its prefix. */
  suffix: Buffer;
}

/** Split a full name into its prefix index and suffix; undefined when no erofs prefix applies. */
export function splitXattrName(name: string): XattrKey | undefined {
  for (const p of XATTR_PREFIXES) {
    if (name.startsWith(p.prefix)) {
      const rest = name.slice(p.prefix.length);
      // The ACL names are exact; "system.posix_acl_accessX" is not representable.
      if (p.prefix.startsWith('system.') && rest.length > 0) return undefined;
      return { index: p.index, suffix: Buffer.from(rest, 'utf8') };
    }
  }
  return undefined;
}

/** The full name, or undefined for an index Linux does not expose (lustre, unknown). */
export function joinXattrName(index: number, suffix: Buffer): string | undefined {
  const p = XATTR_PREFIXES.find((x) => x.index === index);
  return p === undefined ? undefined : p.prefix + suffix.toString('utf8');
}

/** Size of an entry with its padding to 4 bytes. */
export function xattrEntrySize(suffixLen: number, valueLen: number): number {
  const raw = XATTR_ENTRY_SIZE + suffixLen + valueLen;
  return (raw + XATTR_ALIGN - 1) & ~(XATTR_ALIGN - 1);
}

/** Write an entry (with zero padding); returns its size. */
export function encodeXattrEntry(key: XattrKey, value: Buffer, buf: Buffer, at: number): number {
  const size = xattrEntrySize(key.suffix.length, value.length);
  buf.writeUInt8(key.suffix.length, at + XATTR_ENTRY.nameLen);
  buf.writeUInt8(key.index, at + XATTR_ENTRY.nameIndex);
  buf.writeUInt16LE(value.length, at + XATTR_ENTRY.valueSize);
  key.suffix.copy(buf, at + XATTR_ENTRY_SIZE);
  value.copy(buf, at + XATTR_ENTRY_SIZE + key.suffix.length);
  for (let i = at + XATTR_ENTRY_SIZE + key.suffix.length + value.length; i < at + size; i++) buf[i] = 0;
  return size;
}

export interface XattrEntryHead {
  nameLen: number;
  nameIndex: number;
  valueSize: number;
}

export function decodeXattrEntryHead(buf: Buffer, at: number): XattrEntryHead {
  return {
    nameLen: buf.readUInt8(at + XATTR_ENTRY.nameLen),
    nameIndex: buf.readUInt8(at + XATTR_ENTRY.nameIndex),
    valueSize: buf.readUInt16LE(at + XATTR_ENTRY.valueSize),
  };
}

/** Write the 12-byte inline xattr header followed by the shared ids. */
export function encodeXattrHeader(sharedIds: readonly number[], buf: Buffer, at: number): number {
  for (let k = 0; k < XATTR_HEADER_SIZE; k += 4) buf.writeUInt32LE(0, at + k); // filter, count, reserved
  buf.writeUInt8(sharedIds.length, at + XATTR_HEADER.sharedCount);
  let pos = at + XATTR_HEADER_SIZE;
  for (const id of sharedIds) {
    buf.writeUInt32LE(id >>> 0, pos);
    pos += 4;
  }
  return pos - at;
}

export function decodeXattrSharedCount(buf: Buffer, at: number): number {
  return buf.readUInt8(at + XATTR_HEADER.sharedCount);
}
