/**
 * The reader thread's answers to the image's metadata requests: LOOKUP, GETATTR, READDIR and
 * READDIRPLUS with their directory handles, READLINK, GETXATTR, LISTXATTR, STATFS and ACCESS, from a
 * MetadataTree of the thread's own. An immutable tree needs nothing from the main thread, so each is
 * answered where it was read: no postMessage, no main-thread wake-up (stat of every file of a Debian
 * tree spent most of its time in that hop: bench/RESULTS.md, "Where fuse-tree's time goes").
 * Anything unexpected (an errno a tree should not raise, a bug) is left to the main thread, which
 * answers and logs it.
 */
import { EINVAL, EISDIR, ENODATA, ENODEV, ENOENT, ENOSYS, ENOTDIR, ERANGE, errnoOf } from './errno.js';
import {
  FOPEN_CACHE_DIR, FOPEN_KEEP_CACHE, IN_HEADER_SIZE, InHeaderOffset, InitFlag, OUT_HEADER_SIZE, Opcode, cBytes, decodeFh, decodeGetxattrIn,
  decodeInitIn, decodeReadIn, encodeAttrOut, encodeOpenOut, encodeStatfsOut, writeOutHeader,
} from './layout.js';
import { entryReply, negativeEntryReply, sizedReply, writeDirPage, xattrNames, type EntryTimeouts } from './metadata-replies.js';
import { errno, write } from './reader-libc.js';
import type { DirEntry, MetadataTree } from './types.js';

/** Errnos a tree answers in the normal course of things; any other goes to the main thread. */
const EXPECTED = new Set([ENOENT, ENOTDIR, EISDIR, EINVAL, ERANGE, ENODATA]);

/**
 * Directory handles made here start high, apart from the main thread's file handles (a READDIR on a
 * handle this thread does not know, from a previous session, is listed afresh: handles are only
 * positions in an immutable listing).
 */
const FIRST_DIR_HANDLE = 1n << 48n;

/** Listings kept for READDIRs without a handle (continuation pages of a directory being read). */
const LISTINGS_KEPT = 64;

export class MetadataOnThread {
  private readonly dirs = new Map<bigint, { ino: number; entries?: DirEntry[] }>();
  /** Listings by inode, for directories opened without a handle (most recent last). */
  private readonly listings = new Map<number, DirEntry[]>();
  private nextFh = FIRST_DIR_HANDLE;
  private reply = Buffer.alloc(64 * 1024);
  /**
   * The kernel offered zero-message opendir (seen in the INIT this thread passed on): OPENDIR is
   * answered ENOSYS, after which directories are opened and released with no request at all (half the
   * requests of listing a small directory), as cacheable as the handles made here were.
   */
  private zeroMessageOpendir = false;

  /** `answered[0]` counts the requests answered here. */
  constructor(private readonly fd: number, private readonly tree: MetadataTree, private readonly timeouts: EntryTimeouts, private readonly answered: BigInt64Array) {}

  /** Answers the request in req[0, n) if it is a metadata request; false = forward it. */
  tryServe(req: Buffer, n: number): boolean {
    const opcode = req.readUInt32LE(InHeaderOffset.OPCODE);
    const ino = Number(req.readBigUInt64LE(InHeaderOffset.NODEID));
    const unique = req.readBigUInt64LE(InHeaderOffset.UNIQUE);
    const body = req.subarray(IN_HEADER_SIZE, n);
    if (opcode === Opcode.INIT) {
      this.zeroMessageOpendir = (decodeInitIn(body).flags & InitFlag.NO_OPENDIR_SUPPORT) !== 0;
      return false; // the main thread settles the session
    }
    let payload: Buffer | number;
    try {
      const p = this.answer(opcode, ino, body);
      if (p === undefined) return false;
      payload = p;
    } catch (err) {
      const e = errnoOf(err);
      if (!EXPECTED.has(e)) return false;
      payload = e;
    }
    Atomics.add(this.answered, 0, 1n);
    return this.send(unique, payload);
  }

  close(): void {
    this.tree.close();
    this.dirs.clear();
    this.listings.clear();
  }

  /** The reply payload, an empty one, an errno, or undefined when this is not a request answered here. */
  private answer(opcode: number, ino: number, body: Buffer): Buffer | number | undefined {
    switch (opcode) {
      case Opcode.LOOKUP: {
        const attr = this.tree.find(ino, cBytes(body));
        return attr === undefined ? negativeEntryReply(this.timeouts) : entryReply(this.timeouts, attr);
      }
      case Opcode.GETATTR: return encodeAttrOut(this.timeouts.attrTimeout, this.tree.getattr(ino));
      case Opcode.READLINK: return this.tree.readlink(ino);
      case Opcode.GETXATTR: {
        const { size, name } = decodeGetxattrIn(body);
        const value = this.tree.xattr(ino, name);
        return value === undefined ? ENODATA : sizedReply(value, size);
      }
      case Opcode.LISTXATTR: return sizedReply(xattrNames(this.tree.listxattr(ino)), decodeGetxattrIn(body).size);
      case Opcode.STATFS: return encodeStatfsOut(this.tree.statfs());
      case Opcode.ACCESS: return Buffer.alloc(0); // default_permissions: the kernel has checked the mode bits already
      case Opcode.OPENDIR: {
        this.tree.getattr(ino); // a node this tree has
        if (this.zeroMessageOpendir) return ENOSYS;
        const fh = this.nextFh++;
        this.dirs.set(fh, { ino });
        return encodeOpenOut(fh, FOPEN_CACHE_DIR | FOPEN_KEEP_CACHE, 0);
      }
      case Opcode.RELEASEDIR:
        this.dirs.delete(decodeFh(body));
        return Buffer.alloc(0);
      case Opcode.READDIR: return this.readdir(ino, body, false);
      case Opcode.READDIRPLUS: return this.readdir(ino, body, true);
      default: return undefined;
    }
  }

  private readdir(ino: number, body: Buffer, plus: boolean): Buffer {
    const r = decodeReadIn(body);
    const entries = r.fh === 0n ? this.listing(ino, r.offset) : this.handleListing(r.fh, ino, r.offset);
    const out = this.room(r.size);
    return out.subarray(OUT_HEADER_SIZE, OUT_HEADER_SIZE + writeDirPage(out, OUT_HEADER_SIZE, r.size, entries, r.offset, plus, this.timeouts));
  }

  private handleListing(fh: bigint, ino: number, offset: number): DirEntry[] {
    let dir = this.dirs.get(fh);
    if (dir === undefined || dir.ino !== ino) {
      dir = { ino };
      this.dirs.set(fh, dir);
    }
    if (!dir.entries || offset === 0) dir.entries = this.tree.readdir(ino);
    return dir.entries;
  }

  /** A directory opened without a handle: its listing is read at offset 0 and kept for the pages after it. */
  private listing(ino: number, offset: number): DirEntry[] {
    let entries = this.listings.get(ino);
    this.listings.delete(ino);
    if (entries === undefined || offset === 0) entries = this.tree.readdir(ino);
    this.listings.set(ino, entries);
    if (this.listings.size > LISTINGS_KEPT) this.listings.delete(this.listings.keys().next().value!);
    return entries;
  }

  /** The reply buffer, with room for a payload of `size` after the header. */
  private room(size: number): Buffer {
    if (this.reply.length < OUT_HEADER_SIZE + size) this.reply = Buffer.alloc(OUT_HEADER_SIZE + size);
    return this.reply;
  }

  /** Writes the reply: a payload (copied behind the header unless it is already there) or an errno. */
  private send(unique: bigint, payload: Buffer | number): boolean {
    const len = typeof payload === 'number' ? 0 : payload.length;
    const out = this.room(len);
    if (typeof payload !== 'number' && payload.buffer !== out.buffer) payload.copy(out, OUT_HEADER_SIZE);
    writeOutHeader(out, OUT_HEADER_SIZE + len, typeof payload === 'number' ? -payload : 0, unique);
    if (write(this.fd, out, OUT_HEADER_SIZE + len) >= 0) return true;
    // ENOENT: the request was interrupted meanwhile; ENODEV: the connection is gone (the next read says so).
    const e = errno();
    return e === ENOENT || e === ENODEV;
  }
}
