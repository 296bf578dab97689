/**
 * The supervisor: the daemon's long-lived process. It owns every kernel fd (/dev/fuse connections)
 * and kernel object a mount makes, keeps the record file, and runs the worker (which serves requests
 * and the control socket) as a child, restarting it whenever it dies. A worker crash therefore never
 * closes a FUSE connection: the kernel queues requests until the new worker adopts the fd.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { closeSync, constants, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { MS_NODEV, MS_NOSUID, MS_RDONLY } from '../native/libc.js';
import { mountAsync } from '../native/mount-async.js';
import { loopChangeFd } from '../native/loop.js';
import { attachLoop, describeObject, unmakeObject } from '../mount/kernel-objects.js';
import { detect, type Features } from '../mount/detect.js';
import { bindOndemand, openDevice } from '../transport/fscache/device.js';
import { MountError, OndemandError, errorText, systemCode } from '../util/errors.js';
import { log } from '../util/log.js';
import { controlSocketPath, pidFilePath, recordFilePath, runDir } from './paths.js';
import type { IpcFromSupervisor, IpcToSupervisor, KernelObject, MountRecord, SupervisorRequest, SupervisorResults } from './protocol.js';
import { readRecordFile, writeRecordFile } from './records.js';
import { toWire } from './wire-errors.js';

export interface SupervisorOptions {
  cacheDir: string;
}

/** Arguments the worker gets (as JSON in argv[2]). */
export interface WorkerArgs {
  cacheDir: string;
  restarts: number;
  supervisorPid: number;
  runDir: string;
  /** Probed once by the supervisor: a restarted worker must come back fast (reads wait for it). */
  features: Features;
}

const RESTART_DELAY_MS = 200;
const MAX_RESTART_DELAY_MS = 5_000;

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return systemCode(err) === 'EPERM';
  }
}

function sameObject(a: KernelObject, b: KernelObject): boolean {
  if (a.kind !== b.kind) return false;
  switch (a.kind) {
    case 'fuse': return a.path === (b as typeof a).path;
    case 'loop': return a.device === (b as typeof a).device;
    case 'mount': return a.target === (b as typeof a).target;
    case 'dir': return a.path === (b as typeof a).path;
  }
}

export class Supervisor {
  private readonly records = new Map<string, MountRecord>();
  /** Registry credentials per mount: memory only, handed to a restarted worker over IPC. */
  private readonly secrets = new Map<string, string>();
  private worker: ChildProcess | null = null;
  private restarts = 0;
  private stopping = false;
  private lastStart = 0;
  private readonly dir = runDir();
  private exitResolve: (() => void) | null = null;
  private everReady = false;
  /** /dev/cachefiles, bound on the first fscache mount; outlives worker crashes (restore). */
  private cachefiles: { fd: number; restoreSupported: boolean } | null = null;
  private features: Features | null = null;
  /** Set when the daemon stops because its first worker could not start. */
  failure: string | null = null;

  constructor(private readonly options: SupervisorOptions) {}

  /** Runs until shut down. Throws when another daemon owns the run dir. */
  async run(): Promise<void> {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    this.takePidFile();
    await this.cleanStaleRecords();
    this.persist();
    const report = detect();
    this.features = report.features;
    log.info({ mode: report.mode, reason: report.reason }, 'kernel features probed');
    process.on('SIGTERM', () => void this.shutdown('SIGTERM'));
    process.on('SIGINT', () => void this.shutdown('SIGINT'));
    const done = new Promise<void>((r) => { this.exitResolve = r; });
    this.startWorker();
    await done;
  }

  private takePidFile(): void {
    const path = pidFilePath(this.dir);
    try {
      const pid = Number(readFileSync(path, 'utf8').trim());
      if (pid > 0 && pid !== process.pid && pidAlive(pid)) {
        throw new MountError(`a daemon is already running for ${this.dir} (pid ${pid})`, { path: this.dir });
      }
    } catch (err) {
      if (err instanceof OndemandError) throw err;
    }
    writeFileSync(path, `${process.pid}\n`);
  }

  /** Records left by a supervisor that died: their FUSE fds are gone, so their mounts are dead. Undo them. */
  private async cleanStaleRecords(): Promise<void> {
    const stale = readRecordFile(recordFilePath(this.dir));
    if (!stale || stale.mounts.length === 0) return;
    for (const m of stale.mounts) {
      log.warn({ mountpoint: m.mountpoint, image: m.image }, 'undoing a mount left by a daemon that died');
      for (const o of [...m.objects].reverse()) {
        await unmakeObject(o).catch((err: unknown) => log.warn({ object: describeObject(o), err: errorText(err) }, 'stale cleanup step failed'));
      }
    }
  }

  private persist(): void {
    writeRecordFile(recordFilePath(this.dir), {
      supervisorPid: process.pid,
      cacheDir: this.options.cacheDir,
      mounts: [...this.records.values()],
    });
  }

  private startWorker(): void {
    const entry = fileURLToPath(new URL('./worker-main.js', import.meta.url));
    const args: WorkerArgs = { cacheDir: this.options.cacheDir, restarts: this.restarts, supervisorPid: process.pid, runDir: this.dir, features: this.features! };
    this.lastStart = Date.now();
    const child = fork(entry, [JSON.stringify(args)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [] });
    this.worker = child;
    log.info({ workerPid: child.pid, restarts: this.restarts }, 'worker started');
    child.on('message', (msg: IpcToSupervisor) => void this.onRequest(child, msg));
    child.on('exit', (code, signal) => {
      if (this.worker === child) this.worker = null;
      if (this.stopping) return;
      if (!this.everReady && this.records.size === 0) {
        // The first worker never came up (bad cache dir, ...): nothing to protect, so give up loudly.
        this.failure = `the daemon's worker failed to start (exit ${code ?? signal}); see the log above`;
        void this.shutdown('worker failed to start');
        return;
      }
      this.restarts += 1;
      // A worker that dies right after starting is retried with a growing delay, never given up on:
      // giving up would leave every FUSE connection with nobody answering.
      const quick = Date.now() - this.lastStart < 2_000;
      const delay = quick ? Math.min(MAX_RESTART_DELAY_MS, RESTART_DELAY_MS * 2 ** Math.min(this.restarts, 5)) : 0;
      log.warn({ code, signal, restarts: this.restarts, delay }, 'worker died; restarting it');
      setTimeout(() => this.startWorker(), delay);
    });
  }

  private async onRequest(child: ChildProcess, msg: IpcToSupervisor): Promise<void> {
    let reply: IpcFromSupervisor;
    try {
      reply = { rid: msg.rid, ok: true, result: await this.handle(msg.req) };
    } catch (err) {
      log.warn({ op: msg.req.op, err: errorText(err) }, 'supervisor request failed');
      reply = { rid: msg.rid, ok: false, error: toWire(err) };
    }
    if (child.connected) child.send(reply);
  }

  private record(id: string): MountRecord {
    const r = this.records.get(id);
    if (!r) throw new MountError(`no mount record ${id}`);
    return r;
  }

  private add(id: string, object: KernelObject): void {
    this.record(id).objects.push(object);
    this.persist();
  }

  private async handle<K extends SupervisorRequest['op']>(req: SupervisorRequest & { op: K }): Promise<SupervisorResults[K]>;
  private async handle(req: SupervisorRequest): Promise<SupervisorResults[keyof SupervisorResults]> {
    switch (req.op) {
      case 'begin': {
        this.records.set(req.record.id, { ...req.record, state: 'mounting', objects: [] });
        if (req.creds) this.secrets.set(req.record.id, req.creds);
        this.persist();
        return null;
      }
      case 'openFuse': {
        this.record(req.id);
        const fd = openSync('/dev/fuse', constants.O_RDWR);
        try {
          const data = `fd=${fd},rootmode=40000,user_id=0,group_id=0${req.options ? ',' + req.options : ''}`;
          await mountAsync(req.fsname, req.path, `fuse.${req.fsname}`, MS_RDONLY | MS_NOSUID | MS_NODEV, data);
        } catch (err) {
          closeSync(fd);
          throw new MountError(`cannot mount FUSE at ${req.path}: ${systemCode(err) ?? errorText(err)}`, { path: req.path }, { cause: err });
        }
        this.add(req.id, { kind: 'fuse', path: req.path, fd });
        return { fd, supervisorPid: process.pid };
      }
      case 'fuseParams': {
        const o = this.record(req.id).objects.find((x) => x.kind === 'fuse' && x.path === req.path);
        if (o && o.kind === 'fuse') o.params = req.params;
        this.persist();
        return null;
      }
      case 'attachLoop': {
        this.record(req.id);
        const device = await attachLoop(req.file);
        this.add(req.id, { kind: 'loop', device });
        return { device };
      }
      case 'swapLoop': {
        this.record(req.id);
        const loopFd = openSync(req.device, constants.O_RDONLY);
        try {
          const fileFd = openSync(req.file, constants.O_RDONLY);
          try {
            loopChangeFd(loopFd, fileFd, req.device);
          } finally {
            closeSync(fileFd);
          }
        } finally {
          closeSync(loopFd);
        }
        return null;
      }
      case 'mount': {
        this.record(req.id);
        try {
          await mountAsync(req.source, req.target, req.fstype, req.flags, req.data);
        } catch (err) {
          throw new MountError(`mount -t ${req.fstype} at ${req.target} failed: ${systemCode(err) ?? errorText(err)}`, { mountpoint: req.target }, { cause: err });
        }
        this.add(req.id, { kind: 'mount', target: req.target, fstype: req.fstype });
        return null;
      }
      case 'mkdir': {
        this.record(req.id);
        const created = await mkdir(req.path, { recursive: true });
        if (created !== undefined) this.add(req.id, { kind: 'dir', path: req.path });
        return null;
      }
      case 'openCachefiles': {
        this.record(req.id);
        if (this.cachefiles) return { ...this.cachefiles, fresh: false };
        // cachefiles needs a cache dir on ext4/xfs: a subdir of the daemon's cache dir.
        const dir = `${this.options.cacheDir}/fscache`;
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        const fd = openDevice();
        try {
          const { restoreSupported } = bindOndemand(fd, dir, 'ondemand');
          this.cachefiles = { fd, restoreSupported };
        } catch (err) {
          closeSync(fd);
          throw err;
        }
        return { ...this.cachefiles, fresh: true };
      }
      case 'unmake': {
        const r = this.record(req.id);
        await this.unmake(r, req.object);
        return null;
      }
      case 'mounted': {
        const r = this.record(req.id);
        r.state = 'mounted';
        if (req.manifestDigest) r.resolve.manifestDigest = req.manifestDigest;
        this.persist();
        return null;
      }
      case 'end': {
        const r = this.records.get(req.id);
        if (!r) return null;
        const failures: string[] = [];
        for (const o of [...r.objects].reverse()) {
          await this.unmake(r, o).catch((err: unknown) => failures.push(`${describeObject(o)}: ${errorText(err)}`));
        }
        if (failures.length > 0) {
          throw new MountError(`could not undo everything for ${r.mountpoint}: ${failures.join('; ')}`, { mountpoint: r.mountpoint });
        }
        this.records.delete(req.id);
        this.secrets.delete(req.id);
        this.persist();
        return null;
      }
      case 'list':
        return {
          mounts: [...this.records.values()].map((r) => ({ ...r, ...(this.secrets.has(r.id) ? { creds: this.secrets.get(r.id) } : {}) })),
          cacheDir: this.options.cacheDir,
          restarts: this.restarts,
        };
      case 'ready':
        this.everReady = true;
        return null;
      case 'shutdown':
        setImmediate(() => void this.shutdown('request'));
        return null;
    }
  }

  private async unmake(r: MountRecord, object: KernelObject): Promise<void> {
    const index = r.objects.findIndex((o) => sameObject(o, object));
    if (index < 0) return;
    const held = r.objects[index]!;
    await unmakeObject(held);
    if (held.kind === 'fuse') closeSync(held.fd); // last reference: the connection ends
    r.objects.splice(index, 1);
    this.persist();
  }

  /** Stops the worker (it unmounts everything on SIGTERM), undoes what is left, removes socket and pid file. */
  private async shutdown(why: string): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    log.info({ why }, 'daemon stopping');
    const w = this.worker;
    if (w && w.exitCode === null) {
      const exited = new Promise<void>((r) => w.once('exit', () => r()));
      w.kill('SIGTERM');
      const timer = setTimeout(() => w.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
    }
    for (const r of [...this.records.values()]) {
      for (const o of [...r.objects].reverse()) await this.unmake(r, o).catch(() => undefined);
      this.records.delete(r.id);
    }
    this.persist();
    rmSync(controlSocketPath(this.dir), { force: true });
    rmSync(pidFilePath(this.dir), { force: true });
    rmSync(recordFilePath(this.dir), { force: true });
    this.exitResolve?.();
  }
}
