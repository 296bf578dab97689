/**
 * Kernel objects held by this process: how tests, benchmarks and the compat guest mount images with
 * the product's transports, making every object with the same functions the daemon's supervisor uses.
 */
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UndoStack } from '../util/undo-stack.js';
import { fdOfProcess } from '../native/process.js';
import { FanotifyGroup } from './fanotify/group.js';
import {
  brokerOver, type CachefilesDevice, type FanotifyGroupHandle, type KernelBroker, type KernelObject, type KernelObjectOwner,
} from './kernel-broker.js';
import {
  attachLoop, bindCachefiles, makeDir, mountFilesystem, mountFuseConnection, releaseObject, sameObject, swapLoop,
} from './kernel-objects.js';

export interface InProcessKernelOptions {
  /** Where /dev/cachefiles keeps its cache (`<cacheDir>/fscache`); needed only for fscache mounts. */
  cacheDir?: string;
  /** A /dev/cachefiles fd already bound by a process that died (served again with `restore`). */
  adoptCachefiles?: { fd: number; restoreSupported: boolean };
}

/** One bound /dev/cachefiles per process (and per host): every in-process broker shares it. */
let cachefiles: { fd: number; restoreSupported: boolean; served: boolean } | null = null;
/** One fanotify group per process too: the transport serves one group per process. */
let fanotify: { group: FanotifyGroup; served: boolean } | null = null;

export class InProcessKernel implements KernelObjectOwner {
  /** The objects made and not yet unmade, oldest first. */
  readonly objects: KernelObject[] = [];
  /** A mount of this owner was detached while busy: its fanotify marks stay. */
  private detachedBusy = false;

  constructor(private readonly options: InProcessKernelOptions = {}) {}

  /** A broker for one mount: its undo stack unmakes what the mount made, newest first. */
  broker(undo: UndoStack = new UndoStack()): KernelBroker {
    return brokerOver(this, undo);
  }

  async openFuse(path: string, fsname: string, options: string, flags?: number): Promise<number> {
    const fd = await mountFuseConnection(path, fsname, options, flags);
    this.objects.push({ kind: 'fuse', path, fd });
    return fd;
  }

  /** A duplicate, so the transport may close its fd while this owner still holds the connection. */
  adoptFd(ownerFd: number): number {
    return fdOfProcess(process.pid, ownerFd);
  }

  saveFuseParams(path: string, params: unknown): Promise<void> {
    const o = this.objects.find((x) => x.kind === 'fuse' && x.path === path);
    if (o?.kind === 'fuse') o.params = params;
    return Promise.resolve();
  }

  async attachLoop(file: string): Promise<string> {
    const device = await attachLoop(file);
    this.objects.push({ kind: 'loop', device });
    return device;
  }

  swapLoop(device: string, file: string): Promise<void> {
    swapLoop(device, file);
    return Promise.resolve();
  }

  async mount(source: string, target: string, fstype: string, flags: number, data: string): Promise<void> {
    const device = await mountFilesystem(source, target, fstype, flags, data);
    this.objects.push({ kind: 'mount', target, fstype, ...(device === undefined ? {} : { device }) });
  }

  async mkdir(path: string): Promise<boolean> {
    const made = await makeDir(path);
    if (made) this.objects.push({ kind: 'dir', path });
    return made;
  }

  async openCachefiles(): Promise<CachefilesDevice> {
    if (!cachefiles) {
      const adopted = this.options.adoptCachefiles;
      if (adopted) {
        cachefiles = { ...adopted, served: true };
      } else {
        if (!this.options.cacheDir) throw new Error('InProcessKernel: fscache mounts need options.cacheDir');
        cachefiles = { ...bindCachefiles(this.options.cacheDir), served: false };
      }
    }
    const fresh = !cachefiles.served;
    cachefiles.served = true;
    return { fd: cachefiles.fd, restoreSupported: cachefiles.restoreSupported, fresh };
  }

  async openFanotify(): Promise<FanotifyGroupHandle> {
    fanotify ??= { group: FanotifyGroup.create(), served: false };
    const fresh = !fanotify.served;
    fanotify.served = true;
    const journal = join(tmpdir(), `ondemand-fanotify-${process.pid}.journal`);
    if (fresh) process.once('exit', () => rmSync(journal, { force: true }));
    return { fd: fanotify.group.fd, fresh, journal };
  }

  async markFanotify(path: string, open?: string): Promise<void> {
    fanotify ??= { group: FanotifyGroup.create(), served: false };
    const file = fanotify.group.mark(open ?? path);
    this.objects.push({ kind: 'fanotify-mark', path, file });
  }

  async unmake(object: KernelObject): Promise<void> {
    const index = this.objects.findIndex((o) => sameObject(o, object));
    if (index < 0) return;
    if (await releaseObject(this.objects[index]!, fanotify?.group, this.detachedBusy) === 'detached-busy') this.detachedBusy = true;
    this.objects.splice(index, 1);
  }

  /** Unmakes everything still held, newest first (a test's last resort). */
  async unmakeAll(): Promise<void> {
    for (const o of [...this.objects].reverse()) await this.unmake(o);
  }
}
