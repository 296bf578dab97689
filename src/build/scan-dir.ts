/**
 * Scans a local directory into a source tree: lstat of every entry (never following symlinks),
 * xattrs through libc, hard links by (dev, ino), nanosecond mtimes. Names stay raw bytes.
 */
import { closeSync, lstatSync, openSync, readSync, readdirSync, readlinkSync, type BigIntStats } from 'node:fs';
import { FormatError, NotFoundError, systemCode } from '../util/errors.js';
import { readXattrs } from '../native/xattr.js';
import { seekData, seekHole, splitDev } from '../native/fsops.js';
import type { Xattr } from '../format/erofs/model.js';
import type { ByteRange } from '../fetch/types.js';
import type { ContentReader, FileContent, SourceDir, SourceFile, SourceNode } from './source.js';

const S_IFMT = 0o170000n;
const S_IFREG = 0o100000n;
const S_IFDIR = 0o040000n;
const S_IFLNK = 0o120000n;
const S_IFCHR = 0o020000n;
const S_IFBLK = 0o060000n;
const S_IFIFO = 0o010000n;
const S_IFSOCK = 0o140000n;

export interface ScanStats {
  files: number;
  dirs: number;
  symlinks: number;
  others: number;
  hardLinks: number;
  bytes: number;
}

export interface ScanResult {
  root: SourceDir;
  stats: ScanStats;
}

/** Scans `rootPath` (a directory) into a source tree whose files' chunks all go to blob `blob`. */
export function scanDirectory(rootPath: string, options: { blob?: number } = {}): ScanResult {
  const stats: ScanStats = { files: 0, dirs: 0, symlinks: 0, others: 0, hardLinks: 0, bytes: 0 };
  const seen = new Map<string, SourceFile>();
  const rootBytes = Buffer.from(rootPath);
  let st: BigIntStats;
  try {
    st = lstatOrThrow(rootBytes);
  } catch (err) {
    if (systemCode(err) === 'ENOENT') throw new NotFoundError('source directory does not exist', { path: rootPath });
    throw err;
  }
  if ((st.mode & S_IFMT) !== S_IFDIR) throw new FormatError('source is not a directory', { path: rootPath });

  const scanDir = (path: Buffer, dst: BigIntStats): SourceDir => {
    stats.dirs++;
    const dir: SourceDir = { kind: 'dir', ...base(path, dst), entries: [] };
    const names = readdirSync(path, { encoding: 'buffer' });
    for (const name of names) {
      const child = Buffer.concat([path, SLASH, name]);
      const cst = lstatOrThrow(child);
      dir.entries.push({ name, node: scanNode(child, cst) });
    }
    return dir;
  };

  const scanNode = (path: Buffer, st: BigIntStats): SourceNode => {
    const type = st.mode & S_IFMT;
    switch (type) {
      case S_IFDIR:
        return scanDir(path, st);
      case S_IFREG: {
        const key = `${st.dev}:${st.ino}`;
        const known = st.nlink > 1n ? seen.get(key) : undefined;
        if (known) {
          stats.hardLinks++;
          return known;
        }
        stats.files++;
        const size = Number(st.size);
        stats.bytes += size;
        const file: SourceFile = { kind: 'file', ...base(path, st), content: localFileContent(path, size), blob: options.blob ?? 0 };
        if (st.nlink > 1n) seen.set(key, file);
        return file;
      }
      case S_IFLNK:
        stats.symlinks++;
        return { kind: 'symlink', ...base(path, st), target: readlinkSync(path, { encoding: 'buffer' }) };
      case S_IFCHR:
      case S_IFBLK: {
        stats.others++;
        const { major, minor } = splitDev(st.rdev);
        return { kind: type === S_IFCHR ? 'chardev' : 'blockdev', ...base(path, st), rdevMajor: major, rdevMinor: minor };
      }
      case S_IFIFO:
        stats.others++;
        return { kind: 'fifo', ...base(path, st) };
      case S_IFSOCK:
        stats.others++;
        return { kind: 'socket', ...base(path, st) };
      default:
        throw new FormatError(`unknown file type ${type.toString(8)}`, { path: path.toString('latin1') });
    }
  };

  return { root: scanDir(rootBytes, st), stats };
}

const SLASH = Buffer.from('/');

function lstatOrThrow(path: Buffer): BigIntStats {
  return lstatSync(path, { bigint: true });
}

function base(path: Buffer, st: BigIntStats): { perm: number; uid: number; gid: number; mtime: bigint; mtimeNsec: number; xattrs: Xattr[] } {
  const ns = st.mtimeNs;
  let sec = ns / 1_000_000_000n;
  let nsec = ns % 1_000_000_000n;
  if (nsec < 0n) {
    nsec += 1_000_000_000n;
    sec -= 1n;
  }
  return { perm: Number(st.mode & 0o7777n), uid: Number(st.uid), gid: Number(st.gid), mtime: sec, mtimeNsec: Number(nsec), xattrs: xattrsOf(path) };
}

function xattrsOf(path: Buffer): Xattr[] {
  try {
    return readXattrs(path);
  } catch (err) {
    const code = systemCode(err);
    if (code === 'ENOTSUP' || code === 'EOPNOTSUPP') return [];
    throw err;
  }
}

/**
 * A local file read with pread; holes found with SEEK_DATA/SEEK_HOLE where the file system has them.
 * Synchronous calls behind the async interface: a build reads thousands of files one after another,
 * and a thread-pool round trip per read doubled the build time on a loaded machine.
 */
export function localFileContent(path: Buffer | string, size: number): FileContent {
  return {
    size,
    open: async (): Promise<ContentReader> => {
      const fd = openSync(path, 'r');
      return {
        read: async (offset, length) => {
          const buf = Buffer.allocUnsafe(length);
          let got = 0;
          while (got < length) {
            const n = readSync(fd, buf, got, length - got, offset + got);
            if (n === 0) throw new FormatError('file shrank while reading', { path: String(path), offset: offset + got });
            got += n;
          }
          return buf;
        },
        dataRegions: async () => (size > SMALL_FILE ? dataRegionsOf(fd, size) : null),
        close: async () => closeSync(fd),
      };
    },
  };
}

/** Below this, asking for holes costs more than reading (the builder still turns zero chunks into holes). */
const SMALL_FILE = 1 << 20;

/** Byte ranges of `fd` that may hold data (SEEK_DATA/SEEK_HOLE); null when the file system cannot tell. */
export function dataRegionsOf(fd: number, size: number): ByteRange[] | null {
  const regions: ByteRange[] = [];
  try {
    let at = 0;
    while (at < size) {
      const start = seekData(fd, at);
      if (start === null || start >= size) break;
      const end = Math.min(seekHole(fd, start), size);
      regions.push({ offset: start, length: end - start });
      at = end;
    }
  } catch {
    return null;
  }
  return regions;
}
