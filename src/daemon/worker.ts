/**
 * The worker: the daemon process that does the work (control socket, cache, transports). Kernel
 * objects are made by the supervisor; the worker serves them on duplicated fds, so if it dies the
 * supervisor starts another, which re-attaches to every live mount.
 */
import type { Server as HttpServer } from 'node:http';
import type { Server } from 'node:net';
import { openCache, type CacheOptions } from '../cache/backend.js';
import { resolveConfig, setting, type ResolvedConfig } from '../config/resolve.js';
import { MountManager } from '../mount/manager.js';
import { daemonDirs } from '../mount/mountpoint.js';
import { shutdownTransports } from '../transport/index.js';
import { UsageError, errorText } from '../util/errors.js';
import { log, reopenLog } from '../util/log.js';
import { fdOfProcess } from '../native/process.js';
import { holdFanotifyGroup, serveFanotifyGroup, withdrawIgnoreMarks } from '../transport/fanotify/transport.js';
import { withdrawDirectLoops } from '../transport/fuse-blobs/transport.js';
import { endSpareThreads } from '../util/spare-threads.js';
import { UndoStack } from '../util/undo-stack.js';
import { listenControl } from './control-server.js';
import { DaemonMetrics, serveMetrics } from './metrics.js';
import { gatherStatus } from './status.js';
import { SupervisorClient } from './ipc-client.js';
import { SupervisorRecords } from './supervisor-records.js';
import { controlSocketPath, fuseMountsDir } from './paths.js';
import type { ControlRequest, IpcFromSupervisor, StatusResult } from './protocol.js';
import type { WorkerArgs } from './worker-process.js';

/**
 * How long a worker whose supervisor died may take to move fuse-blobs' loops off the cache files before
 * it ends anyway (a fanotify group holder kills it after 1.5 s: fanotify-holder-main.ts).
 */
const WITHDRAW_LOOPS_MS = 1_000;

/** `config`: the daemon's configuration, resolved once by whoever started it (never re-read here). */
export async function runWorker(args: WorkerArgs, config: ResolvedConfig): Promise<void> {
  const supervisor = new SupervisorClient();
  // The supervisor gone means every fd it held is gone too: nothing left to serve.
  // SIGKILL ourselves rather than process.exit(): exit waits for the FUSE reader threads, which sit in
  // poll(2) inside native code and may never return; the fds must be closed now.
  process.on('disconnect', () => {
    log.error('supervisor went away; worker exiting');
    try {
      withdrawIgnoreMarks();
    } catch (err) {
      log.error({ err: errorText(err) }, 'cannot take off the ignore masks of complete blobs');
    }
    // fuse-blobs' loops on cache files go back to FUSE first, which this process serves until then.
    const end = (): void => void process.kill(process.pid, 'SIGKILL');
    setTimeout(end, WITHDRAW_LOOPS_MS).unref();
    withdrawDirectLoops().then(end, end);
  });
  const lock = await supervisor.request({ op: 'cacheLock' });
  const cache = await openCache({ ...cacheOptionsFrom(config), dir: args.cacheDir, heldLockFd: fdOfProcess(args.supervisorPid, lock.fd) });
  const records = new SupervisorRecords(supervisor, args.supervisorPid);
  const manager = new MountManager(cache, records, args.features, fuseMountsDir(args.runDir), {
    fetchDeadlineMs: setting(config, 'fetch.timeout') * 1000,
    reserved: daemonDirs(args.runDir, args.cacheDir),
    registry: { mirrors: setting(config, 'registry.mirrors'), retries: setting(config, 'registry.retries') },
    traceSeconds: setting(config, 'prefetch.trace_seconds'),
  });

  const listed = await supervisor.request({ op: 'list' });
  // A group the supervisor holds: read it before re-attaching opens any data file (the cache's own
  // I/O on marked files raises events), and serve it after (events of a dead worker or daemon wait).
  const fanotifyKernel = listed.fanotify ? records.broker('', new UndoStack()) : null;
  const fanotifyFailed = (err: unknown): void => log.error({ err: errorText(err) }, 'cannot serve the fanotify group');
  if (fanotifyKernel) await holdFanotifyGroup(fanotifyKernel).catch(fanotifyFailed);
  if (listed.mounts.length > 0) await manager.reattach(listed.mounts);
  if (fanotifyKernel) await serveFanotifyGroup(fanotifyKernel).catch(fanotifyFailed);

  const metricsAddress = setting(config, 'metrics.address');
  const figures = (): StatusResult => gatherStatus({
    cache, manager, supervisorPid: args.supervisorPid, workerRestarts: listed.restarts, cacheDir: args.cacheDir, metricsAddress,
  });

  let server: Server | null = null;
  let metricsServer: HttpServer | null = null;
  let stopping = false;
  const stop = async (why: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log.info({ why }, 'worker stopping: unmounting everything');
    endSpareThreads();
    server?.close();
    metricsServer?.close();
    metricsServer?.closeAllConnections();
    await manager.umountAll();
    await shutdownTransports().catch((err: unknown) => log.warn({ err: errorText(err) }, 'stopping the transports failed'));
    await cache.close().catch(() => undefined);
    process.exit(0);
  };
  // Only the supervisor stops a worker for good; a signal (SIGTERM included) is a crash it restarts from.
  process.on('message', (msg: IpcFromSupervisor) => { if ('stop' in msg) void stop('daemon shutting down'); });
  // The supervisor passes SIGHUP on (logrotate): reopen the log file, not a crash.
  process.on('SIGHUP', () => reopenLog());

  const handle = async (req: ControlRequest): Promise<unknown> => {
    switch (req.op) {
      case 'ping':
        return { pid: args.supervisorPid, cacheDir: args.cacheDir };
      case 'mount':
        return manager.mount(req);
      case 'umount':
        return manager.umount(req.mountpoint, { lazy: req.lazy === true });
      case 'status':
        return figures();
      case 'gc':
        // The daemon owns the cache (its lock): `cache gc` asks it. Blobs of mounted images are pinned.
        return cache.gc({ maxSize: req.maxSize });
      case 'verify':
        // Likewise `cache verify`: blobs of mounted images are checked while they serve.
        return cache.verify({ ...(req.tocs === undefined ? {} : { tocs: req.tocs }), ...(req.blobIds === undefined ? {} : { blobIds: req.blobIds }) });
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
  if (metricsAddress !== null) {
    // A port that is taken must not stop the worker from serving mounts: logged, and served without it.
    metricsServer = await serveMetrics(metricsAddress, new DaemonMetrics(figures, { defaultMetrics: true })).then(
      (srv) => {
        log.info({ address: metricsAddress }, 'metrics endpoint listening');
        return srv;
      },
      (err: unknown) => {
        log.error({ address: metricsAddress, err: errorText(err) }, 'cannot serve metrics');
        return null;
      },
    );
  }
  await supervisor.request({ op: 'ready' });
  log.info({ socket: controlSocketPath(args.runDir), restarts: args.restarts }, 'worker listening');
}

/** The cache options of the daemon's configuration: cache.dir, cache.max_size, cache.read_ahead_frames, prefetch.rate. */
export function cacheOptionsFrom(config: ResolvedConfig): CacheOptions {
  const maxSize = setting(config, 'cache.max_size');
  const rate = setting(config, 'prefetch.rate');
  return {
    dir: setting(config, 'cache.dir'),
    readAheadFrames: setting(config, 'cache.read_ahead_frames'),
    ...(maxSize !== null ? { maxSize } : {}),
    ...(rate > 0 ? { prefetchBytesPerSecond: rate } : {}),
  };
}

/**
 * The daemon's cache options for `dir` from the environment alone ($ONDEMAND_CACHE_MAX_SIZE,
 * $ONDEMAND_CACHE_READ_AHEAD_FRAMES, ...; no file): for benchmarks and the compat guest, which make a
 * cache the way the daemon does without a CLI.
 */
export function cacheOptions(dir: string, env: NodeJS.ProcessEnv = process.env): CacheOptions {
  return { ...cacheOptionsFrom(resolveConfig({ env, noFile: true })), dir };
}
