/**
 * A tiny in-memory FuseFilesystem for protocol tests: a root directory with N generated files, a
 * subdirectory, a symlink, and `slow` (direct I/O, whose READ waits until interrupted).
 */
import { OndemandError } from '../../src/util/errors.js';
import { S_IFDIR, S_IFLNK, S_IFREG } from '../../src/fuse/layout.js';
import type { DirEntry, FuseAttr, FuseFilesystem, OpenResult, RequestContext } from '../../src/fuse/types.js';

interface Node {
  ino: number;
  name: string;
  parent: number;
  mode: number;
  data?: Buffer;
  target?: string;
  children?: Map<string, Node>;
}

export function fileContent(i: number, size: number): Buffer {
  const b = Buffer.alloc(size + 4);
  for (let j = 0; j < size; j += 4) b.writeUInt32LE(((i * 2654435761) ^ j) >>> 0, j);
  return b.subarray(0, size);
}

export class ToyFs implements FuseFilesystem {
  readonly nodes = new Map<number, Node>();
  readonly calls = new Map<string, number>();
  slowStarted = 0;
  slowAborted = 0;
  /** READs being answered right now, and the most ever at once (proves requests overlap). */
  activeReads = 0;
  maxActiveReads = 0;
  /** Delay of every ordinary READ, in ms (lets parallel requests pile up). */
  readDelayMs = 0;

  constructor(fileCount: number, fileSize: (i: number) => number) {
    const root: Node = { ino: 1, name: '', parent: 1, mode: S_IFDIR | 0o755, children: new Map() };
    this.nodes.set(1, root);
    let next = 2;
    const add = (parent: Node, n: Omit<Node, 'ino' | 'parent'>): Node => {
      const node: Node = { ...n, ino: next++, parent: parent.ino };
      parent.children!.set(node.name, node);
      this.nodes.set(node.ino, node);
      return node;
    };
    for (let i = 0; i < fileCount; i++) add(root, { name: `f${i}`, mode: S_IFREG | 0o644, data: fileContent(i, fileSize(i)) });
    const sub = add(root, { name: 'sub', mode: S_IFDIR | 0o755, children: new Map() });
    add(sub, { name: 'inner', mode: S_IFREG | 0o600, data: Buffer.from('inner file\n') });
    add(root, { name: 'link', mode: S_IFLNK | 0o777, target: 'sub/inner' });
    add(root, { name: 'slow', mode: S_IFREG | 0o644, data: Buffer.alloc(4096) });
  }

  private count(op: string): void {
    this.calls.set(op, (this.calls.get(op) ?? 0) + 1);
  }

  private node(ino: number): Node {
    const n = this.nodes.get(ino);
    if (!n) throw new OndemandError('ENOTFOUND', 'no such inode', { ino }, { errno: 2 });
    return n;
  }

  private attr(n: Node): FuseAttr {
    const size = n.data?.length ?? (n.target !== undefined ? n.target.length : 4096);
    return { ino: n.ino, size, mode: n.mode, nlink: n.children ? 2 : 1, uid: 0, gid: 0, mtime: 1700000000.5 };
  }

  lookup(parent: number, nameBytes: Buffer): FuseAttr {
    this.count('lookup');
    const name = nameBytes.toString('utf8');
    const child = this.node(parent).children?.get(name);
    if (!child) throw new OndemandError('ENOTFOUND', 'no such file', { name }, { errno: 2 });
    return this.attr(child);
  }

  getattr(ino: number): FuseAttr {
    this.count('getattr');
    return this.attr(this.node(ino));
  }

  open(ino: number): OpenResult {
    this.count('open');
    const n = this.node(ino);
    return n.name === 'slow' ? { directIo: true } : { keepCache: true };
  }

  async read(ino: number, _fh: bigint, offset: number, length: number, ctx: RequestContext): Promise<Buffer> {
    this.count('read');
    const n = this.node(ino);
    if (n.name === 'slow') {
      this.slowStarted++;
      await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
      this.slowAborted++;
      throw new OndemandError('EINTR', 'interrupted', {}, { errno: 4 });
    }
    this.activeReads++;
    this.maxActiveReads = Math.max(this.maxActiveReads, this.activeReads);
    try {
      if (this.readDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.readDelayMs));
      return n.data!.subarray(offset, offset + length);
    } finally {
      this.activeReads--;
    }
  }

  readdir(ino: number): DirEntry[] {
    this.count('readdir');
    return [...(this.node(ino).children?.values() ?? [])].map((c) => ({ name: c.name, ino: c.ino, mode: c.mode }));
  }

  readlink(ino: number): string {
    return this.node(ino).target ?? '';
  }
}
