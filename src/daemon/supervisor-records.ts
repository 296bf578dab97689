/**
 * The worker's mount records and kernel objects, kept by its supervisor over IPC: every object is made
 * in the supervisor (which owns the fds and the record file) and this worker serves duplicates.
 */
import type { MountRecord, MountRecordKeeper } from '../mount/types.js';
import { fdOfProcess } from '../native/process.js';
import type { Credentials } from '../registry/credentials.js';
import { brokerOver, type KernelBroker, type KernelObject } from '../transport/kernel-broker.js';
import type { UndoStack } from '../util/undo-stack.js';
import type { SupervisorClient } from './ipc-client.js';

export class SupervisorRecords implements MountRecordKeeper {
  constructor(private readonly supervisor: SupervisorClient, private readonly supervisorPid: number) {}

  async begin(record: Omit<MountRecord, 'objects' | 'state'>, credentials?: Credentials): Promise<void> {
    await this.supervisor.request({ op: 'begin', record, ...(credentials ? { credentials } : {}) });
  }

  async mounted(id: string, manifestDigest?: string): Promise<void> {
    await this.supervisor.request({ op: 'mounted', id, ...(manifestDigest ? { manifestDigest } : {}) });
  }

  async end(id: string): Promise<void> {
    await this.supervisor.request({ op: 'end', id });
  }

  broker(id: string, undo: UndoStack): KernelBroker {
    const sup = this.supervisor;
    const adoptFd = (fd: number): number => fdOfProcess(this.supervisorPid, fd);
    return brokerOver({
      openFuse: async (path, fsname, options, flags) => (await sup.request({ op: 'openFuse', id, path, fsname, options, ...(flags === undefined ? {} : { flags }) })).fd,
      adoptFd,
      saveFuseParams: async (path, params) => { await sup.request({ op: 'fuseParams', id, path, params }); },
      attachLoop: async (file) => (await sup.request({ op: 'attachLoop', id, file })).device,
      swapLoop: async (device, file) => { await sup.request({ op: 'swapLoop', id, device, file }); },
      mount: async (source, target, fstype, flags, data) => { await sup.request({ op: 'mount', id, source, target, fstype, flags, data }); },
      mkdir: async (path) => (await sup.request({ op: 'mkdir', id, path })).made,
      openCachefiles: () => sup.request({ op: 'openCachefiles', id }),
      openFanotify: () => sup.request({ op: 'openFanotify', id }),
      markFanotify: async (path, open) => { await sup.request({ op: 'markFanotify', id, path, ...(open === undefined ? {} : { open }) }); },
      unmake: async (object: KernelObject) => { await sup.request({ op: 'unmake', id, object }); },
    }, undo);
  }
}
