/**
 * A streaming tar reader: ustar, GNU (long names and links `L`/`K`, base-256 numbers) and PAX
 * (path, linkpath, size, uid, gid, fractional mtime, SCHILY/LIBARCHIVE xattrs). Each entry's body
 * is handed to the caller as a stream of pieces; nothing beyond one input chunk is buffered, except
 * the bounded metadata of long names and PAX headers. Sparse GNU entries are refused.
 */
import { FormatError } from '../util/errors.js';
import type { Xattr } from '../format/erofs/model.js';
import { ByteSource } from './byte-source.js';
import { BLOCK, checksumOk, cstring, emptyPax, headerFlavour, isZeroBlock, numeric, parsePax, type PaxRecords } from './tar-header.js';

export type TarEntryType = 'file' | 'hardlink' | 'symlink' | 'chardev' | 'blockdev' | 'dir' | 'fifo';

export interface TarEntry {
  type: TarEntryType;
  /** The name as stored (raw bytes, not normalised). */
  path: Buffer;
  /** Symlink target or hard-link target (raw bytes). Empty for other types. */
  linkPath: Buffer;
  /** Body length (regular files; 0 otherwise). */
  size: number;
  /** Permission bits (mode & 0o7777). */
  perm: number;
  uid: number;
  gid: number;
  mtime: bigint;
  mtimeNsec: number;
  devMajor: number;
  devMinor: number;
  xattrs: Xattr[];
  /** Offset of the entry's first header in the uncompressed stream (for messages). */
  headerOffset: number;
}

export interface TarLimits {
  /** Largest PAX header or GNU long name/link body. */
  maxMetaBytes: number;
  /** Longest path or link target. */
  maxPathBytes: number;
}

export const DEFAULT_TAR_LIMITS: TarLimits = { maxMetaBytes: 1 << 20, maxPathBytes: 4096 };

export interface TarOptions {
  /** Names the archive in messages, e.g. `layer 2 (sha256:...)`. */
  what: string;
  limits?: Partial<TarLimits>;
}

export interface TarSummary {
  entries: number;
  /** Uncompressed bytes read. */
  bytes: number;
}

/** Called for each entry. `body` yields the file's bytes; unread bytes are skipped afterwards. */
export type TarEntryHandler = (entry: TarEntry, body: AsyncIterable<Buffer>) => Promise<void>;

const MAX_ID = 0xffffffffn;

export async function readTar(input: AsyncIterable<Buffer | Uint8Array | string>, onEntry: TarEntryHandler, options: TarOptions): Promise<TarSummary> {
  const limits = { ...DEFAULT_TAR_LIMITS, ...options.limits };
  const src = new ByteSource(input);
  let entries = 0;
  let globalPax: PaxRecords = emptyPax();
  let pax: PaxRecords = emptyPax();
  let longName: Buffer | undefined;
  let longLink: Buffer | undefined;
  let firstHeaderAt = -1;

  const fail = (message: string, at: number, name?: Buffer): never => {
    const who = name !== undefined && name.length > 0 ? ` entry "${printable(name)}"` : '';
    throw new FormatError(`${options.what}:${who} ${message} (at byte ${at} of the tar stream)`, { offset: at });
  };

  for (;;) {
    const at = src.offset;
    const block = await src.readExact(BLOCK, (got) => fail(`truncated archive: header cut after ${got} bytes`, at));
    if (block === null) break; // EOF at a header boundary: accept archives without end blocks
    if (isZeroBlock(block)) {
      // End of archive (one or two zero blocks). Drain the rest so a decompressor checks its trailer.
      await src.drain();
      break;
    }
    if (firstHeaderAt < 0) firstHeaderAt = at;
    if (!checksumOk(block)) fail('bad header checksum (not a tar archive, or corrupt)', at);

    const typeflag = String.fromCharCode(block[156]!);
    const flavour = headerFlavour(block);
    const rawSize = numeric(block, 'size');
    if (rawSize === undefined || rawSize < 0n) fail('invalid size field', at, cstring(block, 'name'));
    let size = pax.size ?? rawSize!;
    if (typeflag === 'x' || typeflag === 'g' || typeflag === 'L' || typeflag === 'K') size = rawSize!;
    if (size > BigInt(Number.MAX_SAFE_INTEGER)) fail('size too large', at, cstring(block, 'name'));
    const bodySize = Number(size);
    const padded = Math.ceil(bodySize / BLOCK) * BLOCK;

    const readMeta = async (what: string): Promise<Buffer> => {
      if (bodySize > limits.maxMetaBytes) fail(`${what} of ${bodySize} bytes exceeds the limit of ${limits.maxMetaBytes}`, at);
      const data = await src.readExact(padded, () => fail(`truncated archive inside ${what}`, at));
      if (data === null) fail(`truncated archive inside ${what}`, at);
      return Buffer.from(data!.subarray(0, bodySize));
    };

    if (typeflag === 'x' || typeflag === 'g') {
      const data = await readMeta(typeflag === 'x' ? 'PAX header' : 'PAX global header');
      try {
        if (typeflag === 'x') parsePax(data, pax);
        else globalPax = parsePax(data, globalPax);
      } catch (err) {
        fail((err as Error).message, at);
      }
      continue;
    }
    if (typeflag === 'L' || typeflag === 'K') {
      const data = await readMeta(typeflag === 'L' ? 'GNU long name' : 'GNU long link');
      const nul = data.indexOf(0);
      const value = nul < 0 ? data : data.subarray(0, nul);
      if (typeflag === 'L') longName = value;
      else longLink = value;
      continue;
    }

    // A real entry: combine the header with the pending long name / PAX records.
    let path = longName ?? pax.path ?? globalPax.path;
    if (path === undefined) {
      const name = cstring(block, 'name');
      const prefix = flavour === 'posix' ? cstring(block, 'prefix') : Buffer.alloc(0);
      path = prefix.length > 0 ? Buffer.concat([prefix, Buffer.from('/'), name]) : Buffer.from(name);
    }
    const linkPath = longLink ?? pax.linkpath ?? globalPax.linkpath ?? Buffer.from(cstring(block, 'linkname'));
    if (path.length > limits.maxPathBytes) fail(`path of ${path.length} bytes exceeds the limit of ${limits.maxPathBytes}`, at, path.subarray(0, 64));
    if (linkPath.length > limits.maxPathBytes) fail(`link target of ${linkPath.length} bytes exceeds the limit of ${limits.maxPathBytes}`, at, path);
    if (path.length === 0) fail('entry with an empty name', at);
    if (pax.sparse || globalPax.sparse || typeflag === 'S') fail('GNU sparse files are not supported', at, path);

    let type: TarEntryType | undefined;
    switch (typeflag) {
      case '0':
      case '\0':
      case '7':
        type = path[path.length - 1] === 0x2f ? 'dir' : 'file'; // old tars mark directories by a trailing slash
        break;
      case '1':
        type = 'hardlink';
        break;
      case '2':
        type = 'symlink';
        break;
      case '3':
        type = 'chardev';
        break;
      case '4':
        type = 'blockdev';
        break;
      case '5':
      case 'D': // GNU dumpdir: a directory whose body lists names; the body is skipped
        type = 'dir';
        break;
      case '6':
        type = 'fifo';
        break;
      case 'V': // volume label: not a file
        break;
      default:
        fail(`unsupported tar entry type '${printable(Buffer.from(typeflag, 'latin1'))}'`, at, path);
    }

    const num = (f: 'mode' | 'uid' | 'gid' | 'mtime' | 'devmajor' | 'devminor'): bigint => {
      const v = numeric(block, f);
      if (v === undefined) fail(`invalid ${f} field`, at, path);
      return v!;
    };
    const uid = pax.uid ?? globalPax.uid ?? num('uid');
    const gid = pax.gid ?? globalPax.gid ?? num('gid');
    if (uid < 0n || uid > MAX_ID || gid < 0n || gid > MAX_ID) fail(`owner ${uid}:${gid} out of range`, at, path);
    const mtime = pax.mtime ?? globalPax.mtime ?? { sec: num('mtime'), nsec: 0 };
    const isDev = type === 'chardev' || type === 'blockdev';
    const devMajor = isDev ? num('devmajor') : 0n;
    const devMinor = isDev ? num('devminor') : 0n;
    if (devMajor < 0n || devMajor > MAX_ID || devMinor < 0n || devMinor > MAX_ID) fail('device number out of range', at, path);
    const xattrs = mergeXattrs(globalPax.xattrs, pax.xattrs);

    pax = emptyPax();
    longName = undefined;
    longLink = undefined;

    const entryStart = src.offset;
    let consumed = 0;
    if (type !== undefined) {
      const entry: TarEntry = {
        type,
        path,
        linkPath: type === 'symlink' || type === 'hardlink' ? linkPath : Buffer.alloc(0),
        size: type === 'file' ? bodySize : 0,
        perm: Number(num('mode') & 0o7777n),
        uid: Number(uid),
        gid: Number(gid),
        mtime: mtime.sec,
        mtimeNsec: mtime.nsec,
        devMajor: Number(devMajor),
        devMinor: Number(devMinor),
        xattrs,
        headerOffset: at,
      };
      const want = entry.size;
      const body = async function* (): AsyncGenerator<Buffer> {
        while (consumed < want) {
          const piece = await src.readSome(want - consumed);
          if (piece === null) fail(`truncated archive: file body cut after ${consumed} of ${want} bytes`, at, path);
          consumed += piece!.length;
          yield piece!;
        }
      };
      await onEntry(entry, body());
      entries++;
    }
    // Skip what the handler did not read, plus the padding to the next block. Some writers (umoci
    // 0.4 insert) end the stream right after the last body: a missing padding is an end, not damage.
    const bodyEnd = entryStart + bodySize;
    let left = entryStart + padded - src.offset;
    let endedInPadding = false;
    while (left > 0) {
      const piece = await src.readSome(left);
      if (piece === null) {
        if (src.offset < bodyEnd) fail('truncated archive: entry body cut short', at, path);
        endedInPadding = true;
        break;
      }
      left -= piece.length;
    }
    if (endedInPadding) break;
  }
  if (longName !== undefined || longLink !== undefined || pax.path !== undefined) {
    throw new FormatError(`${options.what}: truncated archive: a long-name or PAX header is not followed by its entry`);
  }
  return { entries, bytes: src.offset };
}

function mergeXattrs(global: Xattr[], local: Xattr[]): Xattr[] {
  if (global.length === 0) return local;
  const out = global.filter((g) => !local.some((l) => l.name === g.name)).map((g) => ({ name: g.name, value: Buffer.from(g.value) }));
  return [...out, ...local];
}

/** A name for messages: control bytes escaped, long names shortened. */
export function printable(name: Buffer): string {
  // eslint-disable-next-line no-control-regex -- control bytes are exactly what it escapes
  const s = name.toString('utf8').replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return s.length > 200 ? s.slice(0, 200) + '…' : s;
}
