/**
 * Applies OCI layers, in order, to one in-memory merged tree (OCI image spec, "Changesets" and
 * "Whiteouts"):
 * - a later entry replaces an earlier one at the same path; a directory over a directory only
 *   updates its metadata; anything over a directory (or a directory over anything) replaces it;
 * - `.wh.NAME` removes NAME as it came from LOWER layers; `.wh..wh..opq` hides everything the lower
 *   layers had below its directory (entries of the same layer stay); other `.wh..wh.*` are ignored;
 * - hard links name an entry already in the merged view (this layer or lower) and share its node.
 *
 * Untrusted input is handled here: names are normalised (leading `/` and `.` dropped), `..`
 * components, over-long names, links to missing or escaping targets and writes through symlinks are
 * refused with a message naming the layer and entry. Nothing touches the filesystem: symlinks are
 * data, never followed.
 */
import { FormatError } from '../util/errors.js';
import { log } from '../util/log.js';
import type { DeviceNode, ErofsNodeBase, SpecialNode, SymlinkNode } from '../format/erofs/model.js';
import type { FileContent, SourceDir, SourceFile, SourceNode } from '../build/source.js';
import { printable, type TarEntry } from './tar.js';

export interface MergedDir extends ErofsNodeBase {
  kind: 'dir';
  /** Keyed by the name's bytes read as latin1 (one char per byte). */
  children: Map<string, MergedChild>;
}

export type MergedLeaf = SourceFile | SymlinkNode | DeviceNode | SpecialNode;
export type MergedNode = MergedDir | MergedLeaf;

export interface MergedChild {
  node: MergedNode;
  /** The layer whose entry put this node at this name. */
  layer: number;
}

export interface MergeStats {
  entries: number;
  files: number;
  bytes: number;
  whiteouts: number;
  opaques: number;
  hardLinks: number;
  /** Entries that replaced an entry of the same layer (duplicate names). */
  duplicates: number;
}

const NAME_MAX = 255;
const WH = '.wh.';
const OPAQUE = '.wh..wh..opq';
const WH_META = '.wh..wh.';

export function emptyRoot(): MergedDir {
  return { kind: 'dir', perm: 0o755, uid: 0, gid: 0, mtime: 0n, mtimeNsec: 0, xattrs: [], children: new Map() };
}

export function emptyStats(): MergeStats {
  return { entries: 0, files: 0, bytes: 0, whiteouts: 0, opaques: 0, hardLinks: 0, duplicates: 0 };
}

/** Splits a tar path into normalised components; throws (with `fail`) on `..` and bad names. */
export function pathComponents(path: Buffer, fail: (why: string) => never): string[] {
  const out: string[] = [];
  for (const part of path.toString('latin1').split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') fail('path has a ".." component');
    if (part.length > NAME_MAX) fail(`a name component is ${part.length} bytes (max ${NAME_MAX})`);
    out.push(part);
  }
  return out;
}

/**
 * One layer's entries applied to the tree, in archive order. `store` keeps a file body (spooled, or
 * for the top layer laid out into its blob at once) and returns its content provider. Create one per
 * layer with `layerApplier(...)` and feed it tar entries.
 */
export class LayerApplier {
  constructor(
    private readonly root: MergedDir,
    private readonly layer: number,
    private readonly what: string,
    private readonly store: (body: AsyncIterable<Buffer>, size: number) => Promise<FileContent>,
    readonly stats: MergeStats,
  ) {}

  private fail(entry: TarEntry, why: string): never {
    throw new FormatError(`${this.what}: entry "${printable(entry.path)}": ${why}`, { offset: entry.headerOffset });
  }

  /** Walks to the parent directory of `parts`, creating missing directories; never follows symlinks. */
  private parentOf(entry: TarEntry, parts: string[]): MergedDir {
    let dir = this.root;
    for (let i = 0; i < parts.length - 1; i++) {
      const name = parts[i]!;
      const child = dir.children.get(name);
      if (child === undefined) {
        // A parent the archive did not list: make it as tar would (root-owned, 0755).
        const made: MergedDir = { kind: 'dir', perm: 0o755, uid: 0, gid: 0, mtime: 0n, mtimeNsec: 0, xattrs: [], children: new Map() };
        dir.children.set(name, { node: made, layer: this.layer });
        dir = made;
        continue;
      }
      if (child.node.kind === 'symlink') {
        this.fail(entry, `parent "${printable(Buffer.from(parts.slice(0, i + 1).join('/'), 'latin1'))}" is a symlink (writing through symlinks is refused)`);
      }
      if (child.node.kind !== 'dir') this.fail(entry, `parent "${printable(Buffer.from(parts.slice(0, i + 1).join('/'), 'latin1'))}" is not a directory`);
      // This layer has content below it now: a later whiteout of it in the same layer must keep
      // that content (purgeLower) rather than drop the directory.
      child.layer = this.layer;
      dir = child.node;
    }
    return dir;
  }

  /** Looks a path up in the merged view without following symlinks. */
  private lookup(parts: string[]): MergedNode | undefined {
    let node: MergedNode = this.root;
    for (const name of parts) {
      if (node.kind !== 'dir') return undefined;
      const child: MergedChild | undefined = node.children.get(name);
      if (child === undefined) return undefined;
      node = child.node;
    }
    return node;
  }

  async apply(entry: TarEntry, body: AsyncIterable<Buffer>): Promise<void> {
    this.stats.entries++;
    const parts = pathComponents(entry.path, (why) => this.fail(entry, why));
    if (parts.length === 0) {
      // The root itself (`./`): only its metadata can change.
      if (entry.type !== 'dir') this.fail(entry, 'the root of the image must be a directory');
      setMeta(this.root, entry);
      return;
    }
    const base = parts[parts.length - 1]!;
    if (base.startsWith(WH)) {
      this.whiteout(entry, parts, base);
      return;
    }
    const parent = this.parentOf(entry, parts);
    const existing = parent.children.get(base);
    if (existing !== undefined && existing.layer === this.layer && !(entry.type === 'dir' && existing.node.kind === 'dir')) {
      // A name listed twice in one layer (appended archives): the later entry wins, as tar extracts.
      this.stats.duplicates++;
      log.warn({ layer: this.what, entry: printable(entry.path) }, 'duplicate name in one layer: the later entry replaces the earlier');
    }

    if (entry.type === 'dir') {
      if (existing !== undefined && existing.node.kind === 'dir') {
        setMeta(existing.node, entry);
        existing.layer = this.layer;
        return;
      }
      const dir: MergedDir = { kind: 'dir', ...meta(entry), children: new Map() };
      parent.children.set(base, { node: dir, layer: this.layer });
      return;
    }

    let node: MergedLeaf;
    switch (entry.type) {
      case 'file': {
        const content = await this.store(body, entry.size);
        if (content.size !== entry.size) this.fail(entry, `body has ${content.size} bytes, header says ${entry.size}`);
        node = { kind: 'file', ...meta(entry), content, blob: this.layer };
        this.stats.files++;
        this.stats.bytes += entry.size;
        break;
      }
      case 'hardlink': {
        const targetParts = pathComponents(entry.linkPath, (why) => this.fail(entry, `hard link target: ${why}`));
        const target = this.lookup(targetParts);
        if (target === undefined) this.fail(entry, `hard link target "${printable(entry.linkPath)}" does not exist in this or a lower layer`);
        if (target.kind === 'dir') this.fail(entry, `hard link target "${printable(entry.linkPath)}" is a directory`);
        this.stats.hardLinks++;
        if (target === existing?.node) return; // linking a name to itself
        node = target;
        break;
      }
      case 'symlink':
        if (entry.linkPath.length === 0) this.fail(entry, 'symlink with an empty target');
        // Linux symlinks are always 0777 whatever the archive says (as an unpacked tree shows).
        node = { kind: 'symlink', ...meta(entry), perm: 0o777, target: Buffer.from(entry.linkPath) };
        break;
      case 'chardev':
      case 'blockdev':
        node = { kind: entry.type, ...meta(entry), rdevMajor: entry.devMajor, rdevMinor: entry.devMinor };
        break;
      case 'fifo':
        node = { kind: 'fifo', ...meta(entry) };
        break;
    }
    parent.children.set(base, { node, layer: this.layer });
  }

  private whiteout(entry: TarEntry, parts: string[], base: string): void {
    const dirParts = parts.slice(0, -1);
    const dirNode = this.lookup(dirParts);
    if (base === OPAQUE) {
      this.stats.opaques++;
      if (dirNode === undefined) {
        this.parentOf(entry, parts); // an opaque marker for a directory this layer makes implicitly
        return;
      }
      if (dirNode.kind !== 'dir') this.fail(entry, 'opaque marker inside a non-directory');
      purgeLower(dirNode, this.layer);
      return;
    }
    if (base.startsWith(WH_META)) return; // reserved for other uses (e.g. aufs hard-link dirs)
    const name = base.slice(WH.length);
    if (name === '' || name === '.' || name === '..') this.fail(entry, 'whiteout of an invalid name');
    this.stats.whiteouts++;
    if (dirNode === undefined || dirNode.kind !== 'dir') return; // nothing to hide
    const victim = dirNode.children.get(name);
    if (victim === undefined) return;
    if (victim.layer < this.layer) {
      dirNode.children.delete(name);
    } else if (victim.node.kind === 'dir') {
      // This layer re-made the directory before its whiteout: hide only what lower layers had in it.
      purgeLower(victim.node, this.layer);
    }
  }
}

/** Removes everything lower layers put under `dir` (recursively through dirs this layer touched). */
function purgeLower(dir: MergedDir, layer: number): void {
  for (const [name, child] of dir.children) {
    if (child.layer < layer) dir.children.delete(name);
    else if (child.node.kind === 'dir') purgeLower(child.node, layer);
  }
}

function meta(entry: TarEntry): ErofsNodeBase {
  return { perm: entry.perm, uid: entry.uid, gid: entry.gid, mtime: entry.mtime, mtimeNsec: entry.mtimeNsec, xattrs: entry.xattrs };
}

function setMeta(node: ErofsNodeBase, entry: TarEntry): void {
  Object.assign(node, meta(entry));
}

/** The merged tree as the builder's source tree. Hard links stay shared objects. */
export function toSourceTree(root: MergedDir): SourceDir {
  const convert = (dir: MergedDir): SourceDir => {
    const entries: SourceDir['entries'] = [];
    for (const [name, child] of dir.children) {
      const node: SourceNode = child.node.kind === 'dir' ? convert(child.node) : child.node;
      entries.push({ name: Buffer.from(name, 'latin1'), node });
    }
    const { children: _children, ...rest } = dir;
    return { ...rest, entries };
  };
  return convert(root);
}

/**
 * The most common mtime in the tree (ties: the earliest). Used as the bootstrap's build time: erofs
 * stores inodes with exactly that time in the compact form, and the output stays reproducible.
 */
export function commonMtime(root: MergedDir): { sec: bigint; nsec: number } {
  const counts = new Map<string, number>();
  const seen = new Set<MergedNode>();
  const visit = (n: MergedNode): void => {
    if (seen.has(n)) return;
    seen.add(n);
    const key = `${n.mtime}.${n.mtimeNsec}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
    if (n.kind === 'dir') for (const c of n.children.values()) visit(c.node);
  };
  visit(root);
  let best = { sec: root.mtime, nsec: root.mtimeNsec };
  let bestCount = 0;
  for (const [key, count] of counts) {
    const [secText, nsecText] = key.split('.') as [string, string];
    const cand = { sec: BigInt(secText), nsec: Number(nsecText) };
    const earlier = cand.sec < best.sec || (cand.sec === best.sec && cand.nsec < best.nsec);
    if (count > bestCount || (count === bestCount && earlier)) {
      best = cand;
      bestCount = count;
    }
  }
  return best;
}
