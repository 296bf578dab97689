/**
 * The owner's side of the fanotify group (the supervisor, or InProcessKernel): it creates the group,
 * holds its fd and makes the marks, so they outlive any worker. A data file shared by several mounts
 * is marked once and unmarked after the last of them; a mount detached while still busy keeps its
 * marks (its erofs may still read holes: without a mark they would read as zeros).
 */
import { createPreContentGroup, markPreAccess, unmarkPreAccess } from '../../native/fanotify.js';

export class FanotifyGroup {
  private readonly users = new Map<string, number>();
  private readonly retained = new Set<string>();

  constructor(readonly fd: number) {}

  static create(): FanotifyGroup {
    return new FanotifyGroup(createPreContentGroup());
  }

  /** Marks `path` for pre-content events; must come before anything (erofs) opens it. */
  mark(path: string): void {
    const n = this.users.get(path) ?? 0;
    if (n === 0) markPreAccess(this.fd, path);
    this.users.set(path, n + 1);
  }

  /**
   * One user less; the mark goes with the last, unless it is retained: by this release (`retain`: a
   * busy mount was detached) or earlier (a detached mount still reads the file, whoever else used it since).
   */
  release(path: string, retain: boolean): void {
    const n = (this.users.get(path) ?? 1) - 1;
    if (n > 0) {
      this.users.set(path, n);
      return;
    }
    this.users.delete(path);
    if (retain) this.retained.add(path);
    else if (!this.retained.has(path)) unmarkPreAccess(this.fd, path);
  }

  /** Keeps the mark of `path` for the group's life: a mount detached while busy (by a daemon that died) reads it. */
  retain(path: string): void {
    this.retained.add(path);
  }

  /** Marks kept for detached busy mounts: the group must stay open while they exist. */
  get retainedMarks(): number {
    return this.retained.size;
  }

  get marks(): number {
    return this.users.size;
  }
}
