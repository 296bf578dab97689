/**
 * The one way a transport makes kernel objects. In the daemon every object is made by the supervisor
 * (which owns the fds and the record file, so a worker crash loses nothing); tests, benchmarks and the
 * compat guest use the in-process broker. Both make objects with the functions of kernel-objects.ts.
 */
import type { UndoStack } from '../util/undo-stack.js';

/** One kernel object a mount made. Undone in reverse order of creation. */
export type KernelObject =
  /** A private FUSE mount; `fd` is the owner's /dev/fuse fd; `params` what INIT negotiated. */
  | { kind: 'fuse'; path: string; fd: number; params?: unknown }
  | { kind: 'loop'; device: string }
  /** `device`: the filesystem's `major:minor` once mounted (copies elsewhere have the same). */
  | { kind: 'mount'; target: string; fstype: string; device?: string }
  /** A directory the mount created (the FUSE mount's directory). */
  | { kind: 'dir'; path: string }
  /** A FAN_PRE_ACCESS mark of the owner's fanotify group on a blob's cache data file. */
  /** `file`: dev:ino of the file marked (its name may name another file by now). */
  | { kind: 'fanotify-mark'; path: string; file?: string };

export interface CachefilesDevice {
  /** This process's fd of /dev/cachefiles, bound in on-demand mode. */
  fd: number;
  restoreSupported: boolean;
  /** Bound by this request (false: a previous worker served it; adopt with restore). */
  fresh: boolean;
}

export interface FanotifyGroupHandle {
  /** This process's fd of the owner's pre-content group (one per owner, held for its lifetime). */
  fd: number;
  /** Created by this request (false: another worker, or a daemon that died, served it before). */
  fresh: boolean;
  /** The journal of events read and not yet answered (journal.ts), beside the owner's records. */
  journal: string;
}

/** What both sides of the seam do; a broker returns this process's fds, an owner its own. */
interface KernelOperations {
  /**
   * Opens /dev/fuse and mounts it at `path` with mount(2) `flags` (default: read-only, nosuid, nodev);
   * returns the fd of the connection.
   */
  openFuse(path: string, fsname: string, options: string, flags?: number): Promise<number>;
  /** This process's duplicate of a /dev/fuse fd the owner already holds (worker restart). */
  adoptFd(ownerFd: number): number;
  /** Saves what INIT negotiated, so a restarted worker can resume the connection without INIT. */
  saveFuseParams(path: string, params: unknown): Promise<void>;
  attachLoop(file: string): Promise<string>;
  /** Points a read-only loop device at another file of the same size (a complete blob's cache file). */
  swapLoop(device: string, file: string): Promise<void>;
  /** mount(2) off the caller's thread (the kernel may read through our own FUSE meanwhile). */
  mount(source: string, target: string, fstype: string, flags: number, data: string): Promise<void>;
  /** /dev/cachefiles bound `ondemand`, one per host, held by the owner for its lifetime. */
  openCachefiles(): Promise<CachefilesDevice>;
  /** The owner's fanotify pre-content group, created on first use. */
  openFanotify(): Promise<FanotifyGroupHandle>;
  /**
   * Marks a blob's data file for FAN_PRE_ACCESS in the owner's group: the file `open` reaches (the
   * caller's open fd of it, /proc/PID/fd/N) when given, else `path`; recorded by `path`.
   */
  markFanotify(path: string, open?: string): Promise<void>;
  unmake(object: KernelObject): Promise<void>;
}

/** What a transport makes kernel objects with; each object's undo step goes onto `undo`. */
export interface KernelBroker extends KernelOperations {
  mkdir(path: string): Promise<void>;
  readonly undo: UndoStack;
}

/**
 * Whoever holds the kernel objects: the daemon's supervisor (over IPC, for its worker) or this process
 * (tests, benchmarks, the compat guest). `openFuse` and `openCachefiles` return the owner's fds.
 */
export interface KernelObjectOwner extends KernelOperations {
  /** True when the directory was made (so it is the mount's to remove). */
  mkdir(path: string): Promise<boolean>;
}

/** A broker over `owner` that pushes the undo step of every object it makes onto `undo`. */
export function brokerOver(owner: KernelObjectOwner, undo: UndoStack): KernelBroker {
  const unmake = (object: KernelObject): Promise<void> => owner.unmake(object);
  return {
    undo,
    async openFuse(path, fsname, options, flags) {
      const fd = await owner.openFuse(path, fsname, options, flags);
      undo.push(`FUSE mount at ${path}`, () => unmake({ kind: 'fuse', path, fd }));
      return owner.adoptFd(fd);
    },
    adoptFd: (fd) => owner.adoptFd(fd),
    saveFuseParams: (path, params) => owner.saveFuseParams(path, params),
    async attachLoop(file) {
      const device = await owner.attachLoop(file);
      undo.push(`loop device ${device}`, () => unmake({ kind: 'loop', device }));
      return device;
    },
    swapLoop: (device, file) => owner.swapLoop(device, file),
    async mount(source, target, fstype, flags, data) {
      await owner.mount(source, target, fstype, flags, data);
      undo.push(`${fstype} mount at ${target}`, () => unmake({ kind: 'mount', target, fstype }));
    },
    async mkdir(path) {
      if (await owner.mkdir(path)) undo.push(`directory ${path}`, () => unmake({ kind: 'dir', path }));
    },
    async openCachefiles() {
      const device = await owner.openCachefiles();
      return { ...device, fd: owner.adoptFd(device.fd) };
    },
    async openFanotify() {
      const group = await owner.openFanotify();
      return { ...group, fd: owner.adoptFd(group.fd) };
    },
    async markFanotify(path, open) {
      await owner.markFanotify(path, open);
      undo.push(`fanotify mark on ${path}`, () => unmake({ kind: 'fanotify-mark', path }));
    },
    unmake,
  };
}
