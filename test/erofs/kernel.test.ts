/**
 * The kernel mounts what writeErofs writes: a chunk-based image whose file data sits in one blob
 * (test-local placement: 1 MiB chunks, each 4 KiB aligned, all-zero chunks as holes), mounted
 * (a) file-backed with raw mount(2) and (b) through loop devices; fsck.erofs checks it too.
 * The mounted tree must equal the model: bytes, modes, ids, times, targets, links, xattrs, rdev, st_ino.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, readSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ErofsNode, FileNode } from '../../src/format/erofs/model.js';
import { ErofsReader, fromBuffer } from '../../src/format/erofs/reader.js';
import { writeErofs } from '../../src/format/erofs/writer.js';
import { haveCommand, isRoot, makeTempDir, needs } from '../helpers/env.js';
import { detachLoop, kernelXattrs, losetup, mountErofs, scanMounted, unmount } from './mounted.js';
import { BUILD_TIME, hardTree, inlineFile } from './tree-gen.js';

const CHUNK_BITS = 20;
const canRun = needs('erofs kernel mounts', [isRoot, 'root'], [haveCommand('fsck.erofs'), 'fsck.erofs'], [haveCommand('getfattr'), 'getfattr (attr)'], [haveCommand('losetup'), 'losetup']);

/** Test-only placement of file data into one blob. */
class TinyBlob {
  parts: Buffer[] = [];
  size = 0;
  content = new Map<FileNode, Buffer>();
  private n = 0;

  file = (bytes: Buffer, over: Parameters<typeof inlineFile>[1]): FileNode => {
    const node = inlineFile(bytes, over);
    this.content.set(node, bytes);
    if (bytes.length === 0 || this.n++ % 3 === 0) return node; // a third stay inline in the bootstrap
    this.content.delete(node);
    const chunks = [];
    for (let off = 0; off < bytes.length; off += 1 << CHUNK_BITS) {
      const chunk = bytes.subarray(off, off + (1 << CHUNK_BITS));
      if (chunk.every((b) => b === 0)) {
        chunks.push(null);
        continue;
      }
      chunks.push({ device: 1, blkaddr: this.size / 4096 });
      const padded = Math.ceil(chunk.length / 4096) * 4096;
      this.parts.push(chunk, Buffer.alloc(padded - chunk.length));
      this.size += padded;
    }
    const chunked: FileNode = { ...node, data: { kind: 'chunks', chunkBits: CHUNK_BITS, chunks } };
    this.content.set(chunked, bytes);
    return chunked;
  };
}

describe.skipIf(!canRun)('erofs writer output on the kernel', () => {
  const t = canRun ? makeTempDir('erofs-kernel') : { dir: '', remove: () => {} };
  const blob = new TinyBlob();
  const root = hardTree({ seed: 7, bigDir: 20_000, depth: 100, file: blob.file, hugeHoles: true, acls: true });
  const blobBytes = Buffer.concat(blob.parts);
  const tag = createHash('sha256').update(blobBytes).digest('hex');
  const image = writeErofs({ root, devices: [{ tag, blocks: blobBytes.length / 4096 }], buildTime: BUILD_TIME, buildTimeNsec: 0, volumeName: 'kerneltest' });
  const imgPath = join(t.dir, 'bootstrap.img');
  const blobPath = join(t.dir, 'blob');
  const mnt = join(t.dir, 'mnt');
  const loops: string[] = [];
  let mounted = false;

  beforeAll(() => {
    writeFileSync(imgPath, image);
    writeFileSync(blobPath, blobBytes);
    mkdirSync(mnt);
  });
  afterAll(() => {
    if (mounted) unmount(mnt);
    for (const l of loops) detachLoop(l);
    t.remove();
  });

  it('passes fsck.erofs', () => {
    execFileSync('fsck.erofs', [`--device=${blobPath}`, imgPath], { stdio: 'pipe' });
  });

  function compare(): void {
    const k = scanMounted(mnt);
    const xk = kernelXattrs(mnt);
    const r = ErofsReader.open(fromBuffer(image));
    const nidOf = new Map<string, number>();
    for (const w of r.walk()) nidOf.set(w.path === '/' ? '' : w.pathBytes.toString('hex'), w.nid);
    const inoOf = new Map<ErofsNode, bigint>();
    const typeBits: Record<string, number> = { file: 0o100000, dir: 0o40000, symlink: 0o120000, chardev: 0o20000, blockdev: 0o60000, fifo: 0o10000, socket: 0o140000 };
    let checked = 0;
    const stack: [Buffer, ErofsNode][] = [[Buffer.alloc(0), root]];
    while (stack.length > 0) {
      const [rel, n] = stack.pop()!;
      const key = rel.toString('hex');
      const where = rel.toString() || '/';
      const e = k.get(key);
      expect(e, where).toBeDefined();
      expect({ where, mode: e!.mode, uid: e!.uid, gid: e!.gid, mtimeNs: e!.mtimeNs, ino: e!.ino }).toEqual({
        where, mode: typeBits[n.kind]! | n.perm, uid: n.uid, gid: n.gid, mtimeNs: n.mtime * 1_000_000_000n + BigInt(n.mtimeNsec), ino: BigInt(nidOf.get(key)!),
      });
      const xattrs = n.xattrs.map((x) => [x.name, x.value.toString('hex')] as [string, string]).sort((a, b) => (a[0] < b[0] ? -1 : 1));
      expect(xk.get(key) ?? [], where).toEqual(xattrs);
      if (n.kind !== 'dir') {
        const seen = inoOf.get(n);
        if (seen !== undefined) expect(e!.ino, `${where} hard link`).toBe(seen);
        inoOf.set(n, e!.ino);
      }
      switch (n.kind) {
        case 'dir': {
          expect(e!.names!.map((b) => b.toString('hex')), where).toEqual(n.entries.map((x) => x.name).sort((a, b) => Buffer.compare(a, b)).map((b) => b.toString('hex')));
          expect(e!.nlink, where).toBe(2 + n.entries.filter((x) => x.node.kind === 'dir').length);
          for (const c of n.entries) stack.push([Buffer.concat([rel, Buffer.from('/'), c.name]), c.node]);
          break;
        }
        case 'file': {
          expect(e!.size, where).toBe(BigInt(n.size));
          const abs = Buffer.concat([Buffer.from(mnt), rel]);
          const want = blob.content.get(n);
          if (want !== undefined) {
            expect(createHash('sha256').update(readFileSync(abs)).digest('hex'), where).toBe(createHash('sha256').update(want).digest('hex'));
          } else {
            // The 5 GiB all-hole file: sample reads across it.
            const fd = openSync(abs, 'r');
            try {
              for (const pos of [0, 2 ** 32 - 3, 5 * 2 ** 30 - 100]) {
                const b = Buffer.alloc(4096, 1);
                const got = readSync(fd, b, 0, 4096, pos);
                expect(b.subarray(0, got).every((x) => x === 0)).toBe(true);
              }
            } finally {
              closeSync(fd);
            }
          }
          break;
        }
        case 'symlink':
          expect(e!.target, where).toEqual(n.target);
          expect(e!.size).toBe(BigInt(n.target.length));
          break;
        case 'chardev':
        case 'blockdev':
          expect([e!.rdevMajor, e!.rdevMinor], where).toEqual([n.rdevMajor, n.rdevMinor]);
          break;
        default:
          break;
      }
      checked++;
    }
    expect(checked).toBe(k.size);
  }

  it('mounts file-backed (raw mount(2), device= a regular file) and shows the model', () => {
    try {
      mountErofs(imgPath, mnt, [blobPath]);
      mounted = true;
      compare();
    } finally {
      if (mounted) unmount(mnt);
      mounted = false;
    }
  });

  it('mounts through loop devices and shows the model', () => {
    const a = losetup(imgPath);
    loops.push(a);
    const b = losetup(blobPath);
    loops.push(b);
    try {
      mountErofs(a, mnt, [b]);
      mounted = true;
      compare();
    } finally {
      if (mounted) unmount(mnt);
      mounted = false;
      for (const l of loops.splice(0)) detachLoop(l);
    }
  });
});
