/**
 * The worker: the daemon process that does the work (control socket, cache, transports). Kernel
 * objects are made by the supervisor; the worker serves them on duplicated fds, so if it dies the
 * supervisor starts another, which re-attaches to every live mount.
 */
import type { Server } from 'node:net';
import { openCache, type CacheOptions } from '../cache/backend.js';
import { parseSize } from '../cache/size.js';
import { DEFAULT_FETCH_DEADLINE_MS, MountManager } from '../mount/manager.js';
import { daemonDirs } from '../mount/mountpoint.js';
import { shutdownTransports } from '../transport/index.js';
import { UsageError, errorText } from '../util/errors.js';
import { log } from '../util/log.js';
import { fdOfProcess } from '../native/process.js';
import { holdFanotifyGroup, serveFanotifyGroup } from '../transport/fanotify/transport.js';
import { UndoStack } from '../util/undo-stack.js';
import { listenControl } from './control-server.js';
import { SupervisorClient } from './ipc-client.js';
import { SupervisorRecords } from './supervisor-records.js';
import { controlSocketPath, fuseMountsDir } from './paths.js';
import type { ControlRequest, IpcFromSupervisor, StatusResult } from './protocol.js';
import type { WorkerArgs } from './worker-process.js';

export async function runWorker(args: WorkerArgs): Promise<void> {
  const supervisor = new SupervisorClient();
  // The supervisor gone means every fd it held is gone too: nothing left to serve.
  // SIGKILL ourselves rather than process.exit(): exit waits for the FUSE reader threads, which sit in
  // poll(2) inside native code and may never return; the fds must be closed now.
  process.on('disconnect', () => {
    log.error('supervisor went away; worker exiting');
    process.kill(process.pid, 'SIGKILL');
  });
  const lock = await supervisor.request({ op: 'cacheLock' });
  const cache = await openCache({ ...cacheOptions(args.cacheDir), heldLockFd: fdOfProcess(args.supervisorPid, lock.fd) });
  const records = new SupervisorRecords(supervisor, args.supervisorPid);
  const manager = new MountManager(cache, records, args.features, fuseMountsDir(args.runDir), fetchDeadlineMs(),
    daemonDirs(args.runDir, args.cacheDir));

  const listed = await supervisor.request({ op: 'list' });
  // A group the supervisor holds: read it before re-attaching opens any data file (the cache's own
  // I/O on marked files raises events), and serve it after (events of a dead worker or daemon wait).
  const fanotifyKernel = listed.fanotify ? records.broker('', new UndoStack()) : null;
  const fanotifyFailed = (err: unknown): void => log.error({ err: errorText(err) }, 'cannot serve the fanotify group');
  if (fanotifyKernel) await holdFanotifyGroup(fanotifyKernel).catch(fanotifyFailed);
  if (listed.mounts.length > 0) await manager.reattach(listed.mounts);
  if (fanotifyKernel) await serveFanotifyGroup(fanotifyKernel).catch(fanotifyFailed);

  let server: Server | null = null;
  let stopping = false;
  const stop = async (why: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log.info({ why }, 'worker stopping: unmounting everything');
    server?.close();
    await manager.umountAll();
    await shutdownTransports().catch((err: unknown) => log.warn({ err: errorText(err) }, 'stopping the transports failed'));
    await cache.close().catch(() => undefined);
    process.exit(0);
  };
  // Only the supervisor stops a worker for good; a signal (SIGTERM included) is a crash it restarts from.
  process.on('message', (msg: IpcFromSupervisor) => { if ('stop' in msg) void stop('daemon shutting down'); });

  const handle = async (req: ControlRequest): Promise<unknown> => {
    switch (req.op) {
      case 'ping':
        return { pid: args.supervisorPid, cacheDir: args.cacheDir };
      case 'mount':
        return manager.mount(req);
      case 'umount':
        return manager.umount(req.mountpoint, { lazy: req.lazy === true });
      case 'status': {
        const s = cache.stats();
        const result: StatusResult = {
          daemon: { pid: args.supervisorPid, workerPid: process.pid, workerRestarts: listed.restarts, cacheDir: args.cacheDir },
          ...manager.status(),
          cache: { dir: cache.dir, hits: s.hits, misses: s.misses, bytesFetched: s.bytesFetched, requestsFetched: s.requestsFetched },
        };
        return result;
      }
      case 'shutdown':
        // Unmount first, answer, then let the supervisor stop us.
        await manager.umountAll();
        setImmediate(() => void supervisor.request({ op: 'shutdown' }).catch((err: unknown) => log.warn({ err: errorText(err) }, 'shutdown')));
        return { stopping: true };
      default:
        throw new UsageError(`unknown control request ${(req as { op: string }).op}`);
    }
  };
  server = await listenControl(controlSocketPath(args.runDir), handle);
  await supervisor.request({ op: 'ready' });
  log.info({ socket: controlSocketPath(args.runDir), restarts: args.restarts }, 'worker listening');
}

/** $ONDEMAND_FETCH_TIMEOUT (seconds): how long a read waits for a registry that does not answer. */
export function fetchDeadlineMs(env: NodeJS.ProcessEnv = process.env): number {
  const text = env.ONDEMAND_FETCH_TIMEOUT?.trim();
  if (!text) return DEFAULT_FETCH_DEADLINE_MS;
  const seconds = Number(text);
  if (!Number.isFinite(seconds) || seconds <= 0) throw new UsageError(`bad ONDEMAND_FETCH_TIMEOUT "${text}": need a number of seconds > 0`);
  return seconds * 1000;
}

/**
 * Most frames a sequential reader keeps in flight ahead of it (the read-ahead starts at 1 frame and
 * doubles up to this: fetch-plan.ts). A cold sequential read through fanotify measured 0.58, 0.58,
 * 0.61 and 0.61 GB/s with 2, 4, 8 and 16 (medians of 8 runs). Starting programs has few sequential
 * misses, and short ones get a short read-ahead: on the Debian minbase image `chroot /bin/true`
 * fetched 2.5 MB with 0 and 3.0 MB with 2 or 4 read-ahead frames merged into the demand request.
 */
export const DAEMON_READ_AHEAD_FRAMES = 8;

/**
 * The daemon's cache options, from the environment it was started with: $ONDEMAND_CACHE_MAX_SIZE
 * (e.g. "20G"; unset = no limit) and $ONDEMAND_CACHE_READ_AHEAD_FRAMES (default DAEMON_READ_AHEAD_FRAMES).
 */
export function cacheOptions(dir: string, env: NodeJS.ProcessEnv = process.env): CacheOptions {
  const limit = env.ONDEMAND_CACHE_MAX_SIZE?.trim();
  const ahead = env.ONDEMAND_CACHE_READ_AHEAD_FRAMES?.trim();
  const readAheadFrames = ahead ? Number(ahead) : DAEMON_READ_AHEAD_FRAMES;
  if (!Number.isSafeInteger(readAheadFrames) || readAheadFrames < 0) {
    throw new UsageError(`bad ONDEMAND_CACHE_READ_AHEAD_FRAMES "${ahead}": need a whole number of frames >= 0`);
  }
  return { dir, readAheadFrames, ...(limit ? { maxSize: parseSize(limit) } : {}) };
}
