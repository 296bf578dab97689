/**
 * Compares two directory trees entry by entry, never following symlinks: type, permission bits,
 * owner, size, mtime (optional), symlink target, content sha256, xattrs, device numbers, and the
 * hard-link groups. Returns human-readable differences (empty = equal).
 */
import { createHash } from 'node:crypto';
import { lstatSync, readFileSync, readdirSync, readlinkSync, type BigIntStats } from 'node:fs';
import { join } from 'node:path';
import { readXattrs } from '../../src/native/xattr.js';

export interface TreeEntry {
  type: string;
  perm: number;
  uid: number;
  gid: number;
  size: number;
  mtimeNs: bigint;
  target?: string;
  sha256?: string;
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
  /** Paths to skip entirely (relative, '/'-joined). */
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

/** Every entry under `root` keyed by its relative path ('' is the root). */
export function scanTree(root: string, options: CompareOptions = {}): Map<string, TreeEntry> {
  const out = new Map<string, TreeEntry>();
  const visit = (rel: string): void => {
    const abs = rel === '' ? root : join(root, rel);
    const st = lstatSync(abs, { bigint: true });
    const type = typeOf(st);
    const xattrs = readXattrs(abs)
      .filter((x) => !(options.ignoreXattrs?.(x.name) ?? false))
      .map((x) => `${x.name}=${x.value.toString('hex')}`)
      .sort()
      .join(',');
    const e: TreeEntry = {
      type, perm: Number(st.mode & 0o7777n), uid: Number(st.uid), gid: Number(st.gid),
      size: type === 'file' || type === 'symlink' ? Number(st.size) : 0, mtimeNs: st.mtimeNs, xattrs, ino: st.ino,
    };
    if (type === 'symlink') e.target = readlinkSync(abs);
    if (type === 'file') e.sha256 = createHash('sha256').update(readFileSync(abs)).digest('hex');
    if (type === 'chardev' || type === 'blockdev') e.rdev = `${Number(st.rdev >> 8n) & 0xfff}:${Number((st.rdev & 0xffn) | ((st.rdev >> 12n) & 0xfff00n))}`;
    out.set(rel, e);
    if (type === 'dir') {
      for (const name of readdirSync(abs).sort()) {
        const child = rel === '' ? name : `${rel}/${name}`;
        if (options.ignorePath?.(child) ?? false) continue;
        visit(child);
      }
    }
  };
  visit('');
  return out;
}

/** Hard-link groups (non-directories sharing an inode), as sorted path lists. */
function linkGroups(tree: Map<string, TreeEntry>): string[] {
  const byIno = new Map<bigint, string[]>();
  for (const [path, e] of tree) {
    if (e.type === 'dir') continue;
    const list = byIno.get(e.ino) ?? [];
    list.push(path);
    byIno.set(e.ino, list);
  }
  return [...byIno.values()].filter((l) => l.length > 1).map((l) => l.sort().join(' = ')).sort();
}

export function compareTrees(expectedRoot: string, actualRoot: string, options: CompareOptions = {}): string[] {
  const a = scanTree(expectedRoot, options);
  const b = scanTree(actualRoot, options);
  const diffs: string[] = [];
  for (const [path, e] of a) {
    const f = b.get(path);
    const name = path === '' ? '/' : path;
    if (f === undefined) {
      diffs.push(`missing: ${name}`);
      continue;
    }
    if (path === '' && options.root === false) continue;
    const fields: (keyof TreeEntry)[] = ['type', 'perm', 'uid', 'gid', 'size', 'target', 'sha256', 'rdev', 'xattrs'];
    if (options.mtime !== false) fields.push('mtimeNs');
    for (const k of fields) {
      const x = e[k];
      const y = f[k];
      if (x !== y) diffs.push(`${name}: ${k} ${fmt(x)} != ${fmt(y)}`);
    }
  }
  for (const path of b.keys()) if (!a.has(path)) diffs.push(`unexpected: ${path}`);
  const ga = linkGroups(a);
  const gb = linkGroups(b);
  for (const g of ga) if (!gb.includes(g)) diffs.push(`hard-link group missing: ${g}`);
  for (const g of gb) if (!ga.includes(g)) diffs.push(`unexpected hard-link group: ${g}`);
  return diffs;
}

function fmt(v: unknown): string {
  if (typeof v === 'number' && v > 7) return `${v} (0o${v.toString(8)})`;
  return String(v);
}
