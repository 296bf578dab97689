/**
 * The 512-byte tar header (ustar, GNU and PAX variants) and PAX extended records: offsets, numeric
 * fields (octal and GNU base-256) and the checksum. Pure functions; tar.ts drives them.
 */
import type { Xattr } from '../format/erofs/model.js';

export const BLOCK = 512;

/** Field offsets and lengths of the ustar header; GNU shares the first 345 bytes. */
export const H = {
  name: [0, 100],
  mode: [100, 8],
  uid: [108, 8],
  gid: [116, 8],
  size: [124, 12],
  mtime: [136, 12],
  chksum: [148, 8],
  typeflag: [156, 1],
  linkname: [157, 100],
  magic: [257, 6],
  version: [263, 2],
  devmajor: [329, 8],
  devminor: [337, 8],
  /** POSIX ustar only: GNU headers keep atime/ctime here. */
  prefix: [345, 155],
} as const satisfies Record<string, readonly [number, number]>;

type Field = keyof typeof H;

export function field(block: Buffer, f: Field): Buffer {
  const [at, len] = H[f];
  return block.subarray(at, at + len);
}

/** A NUL-terminated string field as raw bytes. */
export function cstring(block: Buffer, f: Field): Buffer {
  const b = field(block, f);
  const nul = b.indexOf(0);
  return nul < 0 ? b : b.subarray(0, nul);
}

/** 'posix' for `ustar\0`, 'gnu' for `ustar  \0`, 'v7' for neither. */
export function headerFlavour(block: Buffer): 'posix' | 'gnu' | 'v7' {
  const magic = field(block, 'magic').toString('latin1');
  if (magic === 'ustar\0') return 'posix';
  if (magic === 'ustar ' && field(block, 'version').toString('latin1') === ' \0') return 'gnu';
  return 'v7';
}

/**
 * A numeric field: octal digits padded with spaces/NULs, or GNU base-256 (high bit set, two's
 * complement). Returns undefined for garbage. bigint so 12-byte fields never lose precision.
 */
export function numeric(block: Buffer, f: Field): bigint | undefined {
  const b = field(block, f);
  if (b.length > 0 && (b[0]! & 0x80) !== 0) {
    const negative = (b[0]! & 0x40) !== 0;
    let v = BigInt(b[0]! & 0x7f);
    for (let i = 1; i < b.length; i++) v = (v << 8n) | BigInt(b[i]!);
    if (negative) v -= 1n << BigInt(b.length * 8 - 1);
    return v;
  }
  const text = b.toString('latin1').replace(/[\0 ]+$/, '').replace(/^[ \0]+/, '');
  if (text === '') return 0n;
  if (!/^[0-7]+$/.test(text)) return undefined;
  return BigInt('0o' + text);
}

export function isZeroBlock(block: Buffer): boolean {
  for (let i = 0; i < block.length; i++) if (block[i] !== 0) return false;
  return true;
}

/** Whether the stored checksum matches (unsigned sum, or the signed sum old tars wrote). */
export function checksumOk(block: Buffer): boolean {
  const stored = numeric(block, 'chksum');
  if (stored === undefined) return false;
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const byte = i >= H.chksum[0] && i < H.chksum[0] + H.chksum[1] ? 0x20 : block[i]!;
    unsigned += byte;
    signed += byte >= 0x80 ? byte - 0x100 : byte;
  }
  return BigInt(unsigned) === stored || BigInt(signed) === stored;
}

/** Decoded PAX extended header: the keys we act on; values stay raw bytes. */
export interface PaxRecords {
  path?: Buffer;
  linkpath?: Buffer;
  size?: bigint;
  uid?: bigint;
  gid?: bigint;
  mtime?: { sec: bigint; nsec: number };
  xattrs: Xattr[];
  /** GNU.sparse.* seen: the entry is a sparse file we do not support. */
  sparse: boolean;
}

export function emptyPax(): PaxRecords {
  return { xattrs: [], sparse: false };
}

/** Parses `LEN KEY=VALUE\n` records. Throws a plain Error with the reason; the caller adds context. */
export function parsePax(data: Buffer, into: PaxRecords): PaxRecords {
  let at = 0;
  while (at < data.length) {
    if (data[at] === 0) break; // NUL padding after the last record
    const space = data.indexOf(0x20, at);
    if (space < 0 || space - at > 20) throw new Error('malformed PAX record length');
    const lenText = data.subarray(at, space).toString('latin1');
    if (!/^[0-9]+$/.test(lenText)) throw new Error('malformed PAX record length');
    const len = Number(lenText);
    const end = at + len;
    if (len <= space - at + 1 || end > data.length || data[end - 1] !== 0x0a) throw new Error('malformed PAX record');
    const rec = data.subarray(space + 1, end - 1);
    const eq = rec.indexOf(0x3d);
    if (eq <= 0) throw new Error('PAX record without a key');
    applyPax(rec.subarray(0, eq).toString('utf8'), rec.subarray(eq + 1), into);
    at = end;
  }
  return into;
}

function paxNumber(key: string, value: Buffer): bigint {
  const t = value.toString('latin1');
  if (!/^[0-9]+$/.test(t)) throw new Error(`PAX ${key} "${t.slice(0, 40)}" is not a number`);
  return BigInt(t);
}

/** `[-]SECONDS[.FRACTION]` → seconds and nanoseconds (floor semantics for negatives). */
export function parsePaxTime(text: string): { sec: bigint; nsec: number } {
  const m = /^(-?)([0-9]+)(?:\.([0-9]*))?$/.exec(text);
  if (m === null) throw new Error(`PAX mtime "${text.slice(0, 40)}" is not a time`);
  const frac = (m[3] ?? '').slice(0, 9).padEnd(9, '0');
  let sec = BigInt(m[2]!);
  let nsec = Number(frac);
  if (m[1] === '-') {
    sec = -sec;
    if (nsec > 0) {
      sec -= 1n;
      nsec = 1_000_000_000 - nsec;
    }
  }
  return { sec, nsec };
}

function applyPax(key: string, value: Buffer, into: PaxRecords): void {
  switch (key) {
    case 'path':
      into.path = value;
      return;
    case 'linkpath':
      into.linkpath = value;
      return;
    case 'size':
      into.size = paxNumber(key, value);
      return;
    case 'uid':
      into.uid = paxNumber(key, value);
      return;
    case 'gid':
      into.gid = paxNumber(key, value);
      return;
    case 'mtime':
      into.mtime = parsePaxTime(value.toString('latin1'));
      return;
  }
  if (key.startsWith('SCHILY.xattr.')) {
    setXattr(into.xattrs, key.slice('SCHILY.xattr.'.length), value);
  } else if (key.startsWith('LIBARCHIVE.xattr.')) {
    // libarchive URL-encodes the name and base64-encodes the value.
    setXattr(into.xattrs, decodeURIComponent(key.slice('LIBARCHIVE.xattr.'.length)), Buffer.from(value.toString('latin1'), 'base64'));
  } else if (key.startsWith('GNU.sparse.')) {
    into.sparse = true;
  }
}

function setXattr(list: Xattr[], name: string, value: Buffer): void {
  if (name === '') throw new Error('PAX xattr without a name');
  const copy = Buffer.from(value);
  const existing = list.find((x) => x.name === name);
  if (existing) existing.value = copy;
  else list.push({ name, value: copy });
}
