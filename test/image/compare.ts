/**
 * Tree equality for image round trips: raw-byte names (non-UTF-8 safe), every metadata field, and
 * content fingerprints that skip zero pieces cheaply (a 5 GiB sparse file compares in seconds).
 */
import { createHash } from 'node:crypto';
import { closeSync, lstatSync, openSync, readSync, readdirSync, readlinkSync, type BigIntStats } from 'node:fs';
import { readXattrs } from '../../src/native/xattr.js';
import { seekData, seekHole, splitDev } from '../../src/native/fsops.js';
import { isZero } from '../../src/build/builder.js';

export interface Entry {
  type: string;
  perm: number;
  uid: number;
  gid: number;
  size: number;
  nlink: number;
  mtimeNs: bigint;
  target?: string;
  content?: string;
  rdev?: string;
  xattrs: string;
  ino: bigint;
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

/** Aligned piece indexes that may hold data (SEEK_DATA/SEEK_HOLE; every piece when unsupported). */
function dataPieces(fd: number, size: number): Set<number> | null {
  const pieces = new Set<number>();
  try {
    let at = 0;
    while (at < size) {
      const start = seekData(fd, at);
      if (start === null || start >= size) break;
      const end = Math.min(seekHole(fd, start), size);
      for (let p = Math.floor(start / PIECE); p * PIECE < end; p++) pieces.add(p);
      at = end;
    }
  } catch {
    return null;
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

export function scan(root: string): Map<string, Entry> {
  const out = new Map<string, Entry>();
  const rootBytes = Buffer.from(root);
  const visit = (rel: Buffer): void => {
    const abs = Buffer.concat([rootBytes, rel]);
    const st = lstatSync(abs, { bigint: true });
    const type = typeOf(st);
    const e: Entry = {
      type, perm: Number(st.mode & 0o7777n), uid: Number(st.uid), gid: Number(st.gid),
      size: type === 'dir' ? 0 : Number(st.size), nlink: type === 'dir' ? 0 : Number(st.nlink), mtimeNs: st.mtimeNs,
      xattrs: readXattrs(abs).map((x) => `${x.name}=${x.value.toString('hex')}`).join(','), ino: st.ino,
    };
    if (type === 'symlink') e.target = readlinkSync(abs, { encoding: 'buffer' }).toString('hex');
    if (type === 'file') e.content = contentFingerprint(abs, Number(st.size));
    if (type === 'chardev' || type === 'blockdev') {
      const d = splitDev(st.rdev);
      e.rdev = `${d.major}:${d.minor}`;
    }
    out.set(rel.toString('latin1'), e);
    if (type === 'dir') {
      for (const name of readdirSync(abs, { encoding: 'buffer' })) visit(Buffer.concat([rel, Buffer.from('/'), name]));
    }
  };
  visit(Buffer.alloc(0));
  return out;
}

function linkGroups(tree: Map<string, Entry>): Set<string> {
  const byIno = new Map<bigint, string[]>();
  for (const [path, e] of tree) {
    if (e.type === 'dir') continue;
    const l = byIno.get(e.ino) ?? [];
    l.push(path);
    byIno.set(e.ino, l);
  }
  return new Set([...byIno.values()].filter((l) => l.length > 1).map((l) => l.sort().join(' = ')));
}

/** Differences between two trees (empty = equal). */
export function diffTrees(expected: string, actual: string, options: { mtime?: boolean } = {}): string[] {
  const a = scan(expected);
  const b = scan(actual);
  const diffs: string[] = [];
  const fields: (keyof Entry)[] = ['type', 'perm', 'uid', 'gid', 'size', 'nlink', 'target', 'content', 'rdev', 'xattrs'];
  if (options.mtime !== false) fields.push('mtimeNs');
  for (const [path, e] of a) {
    const f = b.get(path);
    const name = path === '' ? '/' : JSON.stringify(path);
    if (!f) {
      diffs.push(`missing ${name}`);
      continue;
    }
    for (const k of fields) if (e[k] !== f[k]) diffs.push(`${name}: ${k} ${String(e[k])} != ${String(f[k])}`);
  }
  for (const path of b.keys()) if (!a.has(path)) diffs.push(`unexpected ${JSON.stringify(path)}`);
  const ga = linkGroups(a);
  const gb = linkGroups(b);
  for (const g of ga) if (!gb.has(g)) diffs.push(`hard-link group missing: ${g}`);
  for (const g of gb) if (!ga.has(g)) diffs.push(`unexpected hard-link group: ${g}`);
  return diffs;
}
