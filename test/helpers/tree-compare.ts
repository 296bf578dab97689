/**
 * Compares two directory trees entry by entry, never following symlinks: type, permission bits,
 * owner, size, link count, mtime (optional), symlink target, content, xattrs, device numbers, and
 * the hard-link groups. Names stay raw bytes (non-UTF-8 safe; map keys are their latin1 spelling),
 * and content is fingerprinted piece by piece, skipping holes, so huge sparse files compare fast
 * without being read into memory. Returns human-readable differences (empty = equal).
 */
import { createHash } from 'node:crypto';
import { closeSync, lstatSync, openSync, readSync, readdirSync, readlinkSync, type BigIntStats } from 'node:fs';
import { readXattrs } from '../../src/native/xattr.js';
import { splitDev } from '../../src/native/fsops.js';
import { isZero } from '../../src/build/builder.js';
import { dataRegionsOf } from '../../src/build/scan-dir.js';

export interface TreeEntry {
  type: string;
  perm: number;
  uid: number;
  gid: number;
  /** 0 for directories (their size is file-system specific). */
  size: number;
  /** 0 for directories (their link count is file-system specific). */
  nlink: number;
  mtimeNs: bigint;
  /** Raw target bytes as latin1. */
  target?: string;
  content?: string;
  rdev?: string;
  xattrs: string;
  ino: bigint;
}

export interface CompareOptions {
  /** Compare mtimes (nanoseconds). Default true. */
  mtime?: boolean;
  /** Compare the root directory's own metadata. Default true. */
  root?: boolean;
  /** xattr names to ignore (e.g. ones the unpacker adds). */
  ignoreXattrs?: (name: string) => boolean;
  /** Paths to skip entirely (relative, '/'-joined, latin1). */
  ignorePath?: (path: string) => boolean;
}

function typeOf(st: BigIntStats): string {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'chardev';
  if (st.isBlockDevice()) return 'blockdev';
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  return 'unknown';
}

const PIECE = 4 << 20;

/** Aligned piece indexes that may hold data (every piece when the file system cannot tell). */
function dataPieces(fd: number, size: number): Set<number> | null {
  const regions = dataRegionsOf(fd, size);
  if (regions === null) return null;
  const pieces = new Set<number>();
  for (const r of regions) {
    for (let p = Math.floor(r.offset / PIECE); p * PIECE < r.offset + r.length; p++) pieces.add(p);
  }
  return pieces;
}

/**
 * sha256 over (offset, bytes) of every non-zero 4 MiB-aligned piece, plus the size. Pieces the file
 * system reports as holes are zero by definition and not read, so sparse files compare fast.
 */
export function contentFingerprint(path: Buffer, size: number): string {
  const h = createHash('sha256');
  const fd = openSync(path, 'r');
  const buf = Buffer.allocUnsafe(PIECE);
  try {
    const pieces = dataPieces(fd, size);
    for (let off = 0; off < size; off += PIECE) {
      if (pieces && !pieces.has(off / PIECE)) continue;
      const want = Math.min(PIECE, size - off);
      let got = 0;
      while (got < want) {
        const n = readSync(fd, buf, got, want - got, off + got);
        if (n === 0) break;
        got += n;
      }
      const piece = buf.subarray(0, got);
      if (got !== want) h.update(`short@${off}`);
      if (!isZero(piece)) h.update(`${off}:`).update(piece);
    }
  } finally {
    closeSync(fd);
  }
  return h.update(`size ${size}`).digest('hex');
}

const SLASH = Buffer.from('/');

/** Every entry under `root` keyed by its relative path ('' is the root; raw bytes as latin1). */
export function scanTree(root: string, options: CompareOptions = {}): Map<string, TreeEntry> {
  const out = new Map<string, TreeEntry>();
  const rootBytes = Buffer.from(root);
  const visit = (rel: Buffer): void => {
    const abs = rel.length === 0 ? rootBytes : Buffer.concat([rootBytes, SLASH, rel]);
    const st = lstatSync(abs, { bigint: true });
    const type = typeOf(st);
    const xattrs = readXattrs(abs)
      .filter((x) => !(options.ignoreXattrs?.(x.name) ?? false))
      .map((x) => `${x.name}=${x.value.toString('hex')}`)
      .sort()
      .join(',');
    const e: TreeEntry = {
      type, perm: Number(st.mode & 0o7777n), uid: Number(st.uid), gid: Number(st.gid),
      size: type === 'dir' ? 0 : Number(st.size), nlink: type === 'dir' ? 0 : Number(st.nlink), mtimeNs: st.mtimeNs,
      xattrs, ino: st.ino,
    };
    if (type === 'symlink') e.target = readlinkSync(abs, { encoding: 'buffer' }).toString('latin1');
    if (type === 'file') e.content = contentFingerprint(abs, Number(st.size));
    if (type === 'chardev' || type === 'blockdev') {
      const d = splitDev(st.rdev);
      e.rdev = `${d.major}:${d.minor}`;
    }
    out.set(rel.toString('latin1'), e);
    if (type === 'dir') {
      for (const name of readdirSync(abs, { encoding: 'buffer' }).sort((a, b) => Buffer.compare(a, b))) {
        const child = rel.length === 0 ? name : Buffer.concat([rel, SLASH, name]);
        if (options.ignorePath?.(child.toString('latin1')) ?? false) continue;
        visit(child);
      }
    }
  };
  visit(Buffer.alloc(0));
  return out;
}

/** Hard-link groups (non-directories sharing an inode), as sorted path lists. */
function linkGroups(tree: Map<string, TreeEntry>): Set<string> {
  const byIno = new Map<bigint, string[]>();
  for (const [path, e] of tree) {
    if (e.type === 'dir') continue;
    const list = byIno.get(e.ino) ?? [];
    list.push(path);
    byIno.set(e.ino, list);
  }
  return new Set([...byIno.values()].filter((l) => l.length > 1).map((l) => l.sort().map(show).join(' = ')));
}

/** Differences between two trees (empty = equal). */
export function compareTrees(expectedRoot: string, actualRoot: string, options: CompareOptions = {}): string[] {
  const a = scanTree(expectedRoot, options);
  const b = scanTree(actualRoot, options);
  const diffs: string[] = [];
  const fields: (keyof TreeEntry)[] = ['type', 'perm', 'uid', 'gid', 'size', 'nlink', 'target', 'content', 'rdev', 'xattrs'];
  if (options.mtime !== false) fields.push('mtimeNs');
  for (const [path, e] of a) {
    const f = b.get(path);
    const name = path === '' ? '/' : show(path);
    if (f === undefined) {
      diffs.push(`missing: ${name}`);
      continue;
    }
    if (path === '' && options.root === false) continue;
    for (const k of fields) if (e[k] !== f[k]) diffs.push(`${name}: ${k} ${fmt(e[k])} != ${fmt(f[k])}`);
  }
  for (const path of b.keys()) if (!a.has(path)) diffs.push(`unexpected: ${show(path)}`);
  const ga = linkGroups(a);
  const gb = linkGroups(b);
  for (const g of ga) if (!gb.has(g)) diffs.push(`hard-link group missing: ${g}`);
  for (const g of gb) if (!ga.has(g)) diffs.push(`unexpected hard-link group: ${g}`);
  return diffs;
}

/** A path as UTF-8 when it is valid UTF-8, else JSON-quoted latin1 (so odd bytes stay visible). */
function show(latin1: string): string {
  const bytes = Buffer.from(latin1, 'latin1');
  const utf8 = bytes.toString('utf8');
  return Buffer.from(utf8).equals(bytes) ? utf8 : JSON.stringify(latin1);
}

function fmt(v: unknown): string {
  if (typeof v === 'number' && v > 7) return `${v} (0o${v.toString(8)})`;
  return String(v);
}
