/** The worker's side of the IPC channel to its supervisor: typed request/response over process.send. */
import type { IpcFromSupervisor, IpcToSupervisor, SupervisorRequest, SupervisorResults } from './protocol.js';
import { fromWire } from './wire-errors.js';
import { MountError } from '../util/errors.js';

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void };

export class SupervisorClient {
  private nextRid = 1;
  private readonly pending = new Map<number, Pending>();

  constructor() {
    if (!process.send) throw new Error('the worker must be started by the supervisor (no IPC channel)');
    process.on('message', (msg: IpcFromSupervisor) => {
      if (!('rid' in msg)) return;
      const p = this.pending.get(msg.rid);
      if (!p) return;
      this.pending.delete(msg.rid);
      if (msg.ok) p.resolve(msg.result);
      else p.reject(fromWire(msg.error));
    });
    process.on('disconnect', () => {
      for (const p of this.pending.values()) p.reject(new MountError('the supervisor went away'));
      this.pending.clear();
    });
  }

  request<K extends SupervisorRequest['op']>(req: SupervisorRequest & { op: K }): Promise<SupervisorResults[K]> {
    const rid = this.nextRid++;
    return new Promise((resolve, reject) => {
      this.pending.set(rid, { resolve: resolve as (v: unknown) => void, reject });
      const msg: IpcToSupervisor = { rid, req };
      process.send!(msg, undefined, {}, (err) => {
        if (err) {
          this.pending.delete(rid);
          reject(new MountError(`cannot reach the supervisor: ${err.message}`));
        }
      });
    });
  }
}
