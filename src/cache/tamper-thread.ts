/**
 * The tamper watch's thread (tamper-watch.ts): reads the FAN_MODIFY events of the cache's data files
 * and posts the files another process changed. The cache's own writes (events of this process) end
 * here. A thread of its own, not the libuv pool: it parks in poll(2) for the daemon's whole life.
 */
import { closeSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { parseEvents } from '../native/fanotify-events.js';
import { FAN_Q_OVERFLOW } from '../native/fanotify.js';
import { errno } from '../native/libc.js';
import { pollerOf, read } from '../native/poll.js';
import type { TamperThreadData, TamperThreadMessage } from './tamper-protocol.js';

if (parentPort === null) throw new Error('tamper-thread.ts runs only as a worker thread (see tamper-watch.ts)');
const port = parentPort;
const { group, wakeFd } = workerData as TamperThreadData;
const EINTR = 4;
const EAGAIN = 11;
const IDLE_WAKE_MS = 250;

function post(msg: TamperThreadMessage): void {
  port.postMessage(msg);
}

function run(): never {
  const buf = Buffer.alloc(16 * 1024);
  const wait = pollerOf(group, wakeFd);
  for (;;) {
    const n = read(group, buf, buf.length);
    if (n > 0) {
      const changed: { file: string; pid: number }[] = [];
      for (const ev of parseEvents(buf, n)) {
        if (ev.fd >= 0) closeSync(ev.fd); // not in a FAN_REPORT_FID group; never kept
        // Lost events (a full queue: a per-user group's is bounded) may have been about any file.
        if (((ev.mask ?? 0) & FAN_Q_OVERFLOW) !== 0) changed.push({ file: '*', pid: 0 });
        else if (ev.pid !== process.pid && ev.handle !== undefined) changed.push({ file: ev.handle, pid: ev.pid });
      }
      if (changed.length > 0) post({ kind: 'changed', changed });
      continue;
    }
    const e = n < 0 ? errno() : 0;
    if (e === EINTR) continue;
    if (e !== EAGAIN) {
      post({ kind: 'end', message: `read of the tamper watch's fanotify group failed (errno ${e})` });
      process.exit(0);
    }
    const woke = wait(IDLE_WAKE_MS);
    if (woke === 'error' && errno() !== EINTR) {
      post({ kind: 'end', message: `poll of the tamper watch's fanotify group failed (errno ${errno()})` });
      process.exit(0);
    }
    if (woke === 'wake') process.exit(0);
  }
}

try {
  run();
} catch (err) {
  post({ kind: 'end', message: err instanceof Error ? err.message : String(err) });
  process.exit(0);
}
