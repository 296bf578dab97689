/**
 * The worker's handle on the kernel objects of one mount. Every object is made by the supervisor
 * (which owns the fds and the record file, so a worker crash loses nothing) and pushes its undo step.
 */
import type { KernelObject } from '../daemon/protocol.js';
import type { UndoStack } from './undo-stack.js';

export interface KernelBroker {
  /** Opens /dev/fuse in the supervisor and mounts it at `path`; returns this process's duplicate of the fd. */
  openFuse(path: string, fsname: string, options: string): Promise<number>;
  /** This process's duplicate of a /dev/fuse fd the supervisor already holds (worker restart). */
  adoptFd(supervisorFd: number): number;
  /** Saves what INIT negotiated, so a restarted worker can resume the connection without INIT. */
  saveFuseParams(path: string, params: unknown): Promise<void>;
  attachLoop(file: string): Promise<string>;
  swapLoop(device: string, file: string): Promise<void>;
  /** mount(2) in the supervisor (on its thread pool: the kernel may read through our FUSE meanwhile). */
  mount(source: string, target: string, fstype: string, flags: number, data: string): Promise<void>;
  mkdir(path: string): Promise<void>;
  /** This process's duplicate of the supervisor's bound /dev/cachefiles fd (see SupervisorResults.openCachefiles). */
  openCachefiles(): Promise<{ fd: number; restoreSupported: boolean; fresh: boolean }>;
  unmake(object: KernelObject): Promise<void>;
  readonly undo: UndoStack;
}
