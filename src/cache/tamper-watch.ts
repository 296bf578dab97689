/**
 * Notices a data file changed behind the cache's back while the cache has it open (docs/cache.md,
 * "Changed while served"): a FAN_MODIFY mark on each open data file, in a notification group of this
 * process; a write, truncate or fallocate by any other process is reported to the blob, which then
 * trusts none of its frames until they are verified again. The cache's own writes raise events too;
 * the thread drops them by pid. A per-user daemon gets an unprivileged group (pid 0 for others);
 * where fanotify is not allowed at all, only the blob's next open notices a change.
 */
import { writeSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { handleKey } from '../native/fanotify-events.js';
import { createNotifyGroup, fileHandleOf, markModify, unmarkModify } from '../native/fanotify.js';
import { closeQuietly, pipe2 } from '../native/fd.js';
import { CacheError, errorText } from '../util/errors.js';
import { log } from '../util/log.js';
import { compiledThreadUrl } from '../util/thread-url.js';
import type { TamperThreadData, TamperThreadMessage } from './tamper-protocol.js';

/** Called with the pid of the process that modified the file (0 when unknown). */
export type ChangedBehind = (pid: number) => void;

export class TamperWatch {
  private readonly watched = new Map<string, ChangedBehind>();
  private thread: Worker | null;

  private constructor(private readonly group: number, private readonly wake: [number, number]) {
    const data: TamperThreadData = { group, wakeFd: wake[0] };
    const thread = new Worker(compiledThreadUrl(import.meta.url, 'tamper-thread.js', 'ECACHE'), { workerData: data });
    thread.on('message', (msg: TamperThreadMessage) => {
      if (msg.kind === 'end') {
        log.error({ err: msg.message }, 'cache tamper watch stopped: data files changed by other processes are noticed only at their next open');
        return;
      }
      for (const { file, pid } of msg.changed) {
        if (file === '*') for (const changed of this.watched.values()) changed(pid);
        else this.watched.get(file)?.(pid);
      }
    });
    thread.on('error', (err) => log.error({ err: errorText(err) }, 'cache tamper watch failed'));
    thread.unref();
    this.thread = thread;
  }

  /** A watch, or undefined where this process may not make fanotify groups (said once in the log). */
  static start(): TamperWatch | undefined {
    let group: number;
    try {
      group = createNotifyGroup();
    } catch (err) {
      log.info({ err: errorText(err) }, 'cache data files are not watched while served (no fanotify here): changes by other processes are noticed at the next open');
      return undefined;
    }
    const wake = pipe2();
    if (typeof wake === 'number') {
      closeQuietly(group);
      throw new CacheError(`pipe2 failed: errno ${-wake}`, {});
    }
    return new TamperWatch(group, wake);
  }

  /**
   * Watches the data file open as `fd` until the returned function is called: `changed` runs (on the
   * main thread) after each modification by another process.
   */
  watch(fd: number, changed: ChangedBehind): () => void {
    const file = handleKey(fileHandleOf(fd));
    markModify(this.group, fd);
    this.watched.set(file, changed);
    return () => {
      if (this.watched.get(file) !== changed) return;
      this.watched.delete(file);
      unmarkModify(this.group, fd);
    };
  }

  async stop(): Promise<void> {
    const thread = this.thread;
    this.thread = null;
    if (thread === null) return;
    thread.ref(); // or the wait below would not keep the process alive
    const exited = new Promise<void>((r) => thread.once('exit', () => r()));
    try {
      writeSync(this.wake[1], Buffer.from([1]));
    } catch {
      // the thread is gone already
    }
    await exited;
    for (const fd of [...this.wake, this.group]) closeQuietly(fd);
  }
}
