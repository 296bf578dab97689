/**
 * Writer step 1: flatten the model tree into inodes in nid order (root first, then breadth-first
 * with each directory's children together), sharing one inode per hard-linked node and counting links.
 */
import { FormatError } from '../../util/errors.js';
import { NAME_LEN } from './layout.js';
import type { DirEntry, DirNode, ErofsNode } from './model.js';

export interface ChildRef {
  name: Buffer;
  inode: TreeInode;
}

export interface TreeInode {
  node: ErofsNode;
  /** Position in nid order; also the on-disk i_ino. */
  index: number;
  /** Names pointing at a non-directory; 2 + subdirectories for a directory. */
  nlink: number;
  /** Directories: every entry including `.` and `..`, sorted bytewise. */
  children: ChildRef[];
}

const DOT = Buffer.from('.');
const DOTDOT = Buffer.from('..');

function checkName(name: Buffer, where: string): void {
  if (name.length < 1 || name.length > NAME_LEN) {
    throw new FormatError(`erofs writer: name of ${name.length} bytes in ${where} (must be 1..${NAME_LEN})`, { path: where });
  }
  if (name.includes(0x2f) || name.includes(0)) {
    throw new FormatError(`erofs writer: name ${JSON.stringify(name.toString('latin1'))} in ${where} contains '/' or NUL`, { path: where });
  }
  if (name.equals(DOT) || name.equals(DOTDOT)) {
    throw new FormatError(`erofs writer: entry named "${name.toString()}" in ${where} (the writer adds . and ..)`, { path: where });
  }
}

/**
 * Entries sorted bytewise. A latin1 string has one code unit per byte, so comparing those strings
 * is unsigned byte order (shorter prefix first) — much cheaper than Buffer.compare per comparison.
 */
function sortedEntries(entries: readonly DirEntry[]): { entry: DirEntry; key: string }[] {
  const keyed = entries.map((entry) => ({ entry, key: entry.name.toString('latin1') }));
  keyed.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return keyed;
}

/** Every inode once, root first. Throws FormatError for bad names, duplicates, and directories linked twice. */
export function collectInodes(root: DirNode): TreeInode[] {
  const rootInode: TreeInode = { node: root, index: 0, nlink: 2, children: [] };
  const inodes: TreeInode[] = [rootInode];
  const seen = new Map<ErofsNode, TreeInode>([[root, rootInode]]);
  const paths = new Map<TreeInode, string>([[rootInode, '/']]);
  const parentOf = new Map<TreeInode, TreeInode>();
  // inodes grows while we walk it: every directory is expanded once, in nid order.
  for (let i = 0; i < inodes.length; i++) {
    const dir = inodes[i]!;
    if (dir.node.kind !== 'dir') continue;
    const where = paths.get(dir) ?? '?';
    const entries = sortedEntries(dir.node.entries);
    const children: ChildRef[] = [];
    for (let k = 0; k < entries.length; k++) {
      const e = entries[k]!.entry;
      checkName(e.name, where);
      if (k > 0 && entries[k - 1]!.key === entries[k]!.key) {
        throw new FormatError(`erofs writer: duplicate name ${JSON.stringify(e.name.toString('latin1'))} in ${where}`, { path: where });
      }
      let child = seen.get(e.node);
      if (child !== undefined) {
        if (e.node.kind === 'dir') {
          throw new FormatError(`erofs writer: directory ${where}${e.name.toString()} is linked twice (a cycle or a hard-linked directory)`, { path: where });
        }
        child.nlink++;
      } else {
        child = { node: e.node, index: inodes.length, nlink: e.node.kind === 'dir' ? 2 : 1, children: [] };
        seen.set(e.node, child);
        inodes.push(child);
        if (e.node.kind === 'dir') {
          paths.set(child, `${where}${e.name.toString()}/`);
          parentOf.set(child, dir);
          dir.nlink++;
        }
      }
      children.push({ name: e.name, inode: child });
    }
    // "." and ".." go in their byte-order places ("." < ".-x" < ".." is possible, so each on its own).
    const before = (k: string): number => {
      let n = 0;
      while (n < entries.length && entries[n]!.key < k) n++;
      return n;
    };
    children.splice(before('..'), 0, { name: DOTDOT, inode: parentOf.get(dir) ?? dir });
    children.splice(before('.'), 0, { name: DOT, inode: dir });
    dir.children = children;
  }
  return inodes;
}
