/**
 * The owner's side of the fanotify group (the supervisor, or InProcessKernel): it creates the group,
 * holds its fd and makes the marks, so they outlive any worker. Marks are kept by inode (dev:ino), with
 * an fd of each marked file: a data file shared by several mounts is marked once and unmarked after
 * the last of them, and a data file deleted or replaced under its name while mounted keeps its own
 * mark while the file now at that name gets one of its own (refcounting by name would leave the new
 * file unmarked, and its holes read as zeros). A mount detached while still busy keeps its marks.
 */
import { closeSync, constants, fstatSync, openSync } from 'node:fs';
import { fileKey } from '../../native/fanotify-events.js';
import { createPreContentGroup, markPreAccessFd, unignorePreAccessFd, unmarkPreAccess, unmarkPreAccessFd } from '../../native/fanotify.js';

/** What a mark is known by: the file's name when marked, and its inode. */
export interface MarkedFile {
  path: string;
  /** dev:ino; absent in records of an older daemon (then the name is all there is). */
  file?: string;
}

export class FanotifyGroup {
  private readonly files = new Map<string, { fd: number; users: number }>();
  private readonly retained = new Set<string>();

  constructor(readonly fd: number) {}

  static create(): FanotifyGroup {
    return new FanotifyGroup(createPreContentGroup());
  }

  /** Marks the file at `path` for pre-content events (before anything, erofs, opens it); returns its dev:ino. */
  mark(path: string): string {
    const fd = openSync(path, constants.O_RDONLY);
    try {
      const st = fstatSync(fd, { bigint: true });
      const key = fileKey(st.dev, st.ino);
      const known = this.files.get(key);
      if (known) {
        known.users += 1;
        closeSync(fd);
        return key;
      }
      markPreAccessFd(this.fd, fd);
      this.files.set(key, { fd, users: 1 });
      return key;
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  /**
   * One user less; the mark goes with the last, unless it is retained: by this release (`retain`: a
   * busy mount was detached) or earlier (a detached mount still reads the file, whoever else used it since).
   */
  release(marked: MarkedFile, retain: boolean): void {
    const key = marked.file ?? marked.path;
    const known = this.files.get(key);
    if (known && known.users > 1) {
      known.users -= 1;
      return;
    }
    if (retain) this.retained.add(key);
    if (known) {
      this.files.delete(key);
      if (!this.retained.has(key)) unmarkPreAccessFd(this.fd, known.fd);
      closeSync(known.fd);
    } else if (!this.retained.has(key)) {
      unmarkPreAccess(this.fd, marked.path); // a record of an older daemon: by name
    }
  }

  /**
   * Every file's reads raise events again: the worker that set the ignore masks (complete, trusted
   * blobs) died, and its successor trusts nothing until verified; a file changed meanwhile must not be
   * read past it. The successor adds the masks back as blobs verify complete.
   */
  unignoreAll(): void {
    for (const { fd } of this.files.values()) unignorePreAccessFd(this.fd, fd);
  }

  /** Keeps the mark for the group's life: a mount detached while busy (by a daemon that died) reads it. */
  retain(marked: MarkedFile): void {
    this.retained.add(marked.file ?? marked.path);
  }

  /** Marks kept for detached busy mounts: the group must stay open while they exist. */
  get retainedMarks(): number {
    return this.retained.size;
  }

  get marks(): number {
    return this.files.size;
  }
}
