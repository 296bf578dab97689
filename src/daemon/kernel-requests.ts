/**
 * The supervisor's half of the worker's requests: it keeps every mount's record (and the record file)
 * and makes, holds and unmakes the mount's kernel objects with transport/kernel-objects.ts. What it
 * holds survives the worker: a restarted worker gets the records back with `list`.
 */
import type { MountRecord } from '../mount/types.js';
import type { Credentials } from '../registry/credentials.js';
import type { KernelObject } from '../transport/kernel-broker.js';
import {
  attachLoop, bindCachefiles, describeObject, makeDir, mountFilesystem, mountFuseConnection, releaseObject, sameObject, swapLoop, unmakeObject,
} from '../transport/kernel-objects.js';
import { unmarkPreAccess } from '../native/fanotify.js';
import { fdOfProcess } from '../native/process.js';
import { FanotifyGroup } from '../transport/fanotify/group.js';
import { closeQuietly } from '../native/fd.js';
import { MountError, errorText } from '../util/errors.js';
import { log } from '../util/log.js';
import type { SupervisorRequest, SupervisorResults } from './protocol.js';
import { adoptHolder, endHolder, fanotifyJournalPath, retainedMarks, spawnHolder } from './fanotify-holder.js';
import { CACHEFILES_FD_NAME, FANOTIFY_FD_NAME, fuseFdName, type FdStore, type PassedFds } from './fd-store.js';
import { readRecordFile, writeRecordFile } from './records.js';

/** Requests about kernel objects and records; the lifecycle ones (ready, shutdown) are the supervisor's. */
export type KernelRequest = Exclude<SupervisorRequest, { op: 'ready' } | { op: 'shutdown' } | { op: 'list' } | { op: 'cacheLock' }>;

export class KernelRequests {
  private readonly records = new Map<string, MountRecord>();
  /** Registry credentials per mount: memory only, handed to a restarted worker over IPC. */
  private readonly secrets = new Map<string, Credentials>();
  /** /dev/cachefiles, bound on the first fscache mount; outlives worker crashes (restore). */
  private cachefiles: { fd: number; restoreSupported: boolean } | null = null;
  /** The fanotify group, made on the first fanotify mount or adopted from a dead daemon's holder. */
  private fanotify: { group: FanotifyGroup; holderPid: number; served: boolean } | null = null;
  /** Set at shutdown: a holder that ends then is not replaced. */
  private stopping = false;
  /** Mounts whose erofs was detached while busy: their fanotify marks stay. */
  private readonly detachedBusy = new Set<string>();
  /**
   * Mounts being undone (end, undoAll). A request of a worker that died can still be making an object
   * for one (losetup, mount(2)) while its successor undoes the half-made mount: what it makes then is
   * undone at once instead of recorded too late or nowhere.
   */
  private readonly ending = new Set<string>();

  /** systemd's fd store, when systemd runs the daemon: a copy of every kernel fd held here, and the credentials. */
  constructor(private readonly recordFile: string, private readonly cacheDir: string, private readonly runDir: string, private readonly store: FdStore | null = null) {}

  /**
   * Takes over the fanotify group a supervisor that died left with its holder (its marks, its pending
   * events), unless the group came with the mounts already (`daemon restart`: adoptFrom); then starts a
   * holder of our own and ends the old one.
   */
  adoptFanotify(): void {
    const held = adoptHolder(this.runDir);
    if (held && this.fanotify) closeQuietly(held.fd); // the same group, taken from the predecessor itself
    else if (held) this.fanotify = { group: new FanotifyGroup(held.fd), holderPid: held.pid, served: true };
    if (!this.fanotify) return;
    this.keepRetainedMarks();
    this.storeFanotify();
    // A holder of our own (restarted if it dies), then the old one can go.
    this.holdFanotify();
    if (!held) return;
    try {
      process.kill(held.pid, 'SIGTERM');
    } catch {
      // gone already
    }
  }

  /** The marks a daemon-less `umount` kept for mounts it detached busy: kept for the group's life here too. */
  private keepRetainedMarks(): void {
    for (const m of retainedMarks(this.runDir)) this.fanotify?.group.retain(m);
  }

  private fanotifyGroup(): { group: FanotifyGroup; holderPid: number; served: boolean } {
    if (!this.fanotify) {
      const group = FanotifyGroup.create();
      this.fanotify = { group, holderPid: 0, served: false };
      this.holdFanotify();
      this.storeFanotify();
    }
    return this.fanotify;
  }

  /**
   * Under systemd the store keeps the group too: a holder that dies while systemd restarts the daemon
   * (no supervisor to start another) must not close the group's last fd, which allows every pending
   * event unfilled. The same group kept again (after an adoption) stays one entry: systemd keeps a
   * file once, and takePassed keeps the newest of one name.
   */
  private storeFanotify(): void {
    if (this.fanotify) this.store?.keep(FANOTIFY_FD_NAME, this.fanotify.group.fd);
  }

  /** (Re)starts the holder of the group: one must outlive this process at every moment. */
  private holdFanotify(): void {
    const f = this.fanotify;
    if (!f || this.stopping) return;
    f.holderPid = spawnHolder(this.runDir, f.group.fd, () => {
      if (this.stopping || this.fanotify !== f) return;
      log.warn({ holderPid: f.holderPid }, 'the fanotify group holder died; starting another');
      this.holdFanotify();
    });
  }

  get size(): number {
    return this.records.size;
  }

  /** The worker died: the reads its ignore masks let through now wait for its successor (see FanotifyGroup.unignoreAll). */
  workerDied(): void {
    this.fanotify?.group.unignoreAll();
  }

  /**
   * Records left by a supervisor that died: their FUSE fds are gone, so their mounts are dead. Undo
   * them. Their fanotify marks (in the group adopted from the holder) go with a mount that was really
   * unmounted; a mount still busy keeps them (its readers get EIO from the worker, never zeros).
   */
  async undoStale(stale: MountRecord[] = readRecordFile(this.recordFile)?.mounts ?? []): Promise<void> {
    const keep = new Set<string>();
    const drop: string[] = [];
    for (const m of stale) {
      log.warn({ mountpoint: m.mountpoint, image: m.image }, 'undoing a mount left by a daemon that died');
      let busy = false;
      for (const o of [...m.objects].reverse()) {
        if (o.kind === 'fanotify-mark') {
          if (busy) {
            keep.add(o.path);
            this.fanotify?.group.retain(o);
          } else {
            drop.push(o.path);
          }
          continue;
        }
        const outcome = await unmakeObject(o).catch((err: unknown) => log.warn({ object: describeObject(o), err: errorText(err) }, 'stale cleanup step failed'));
        if (outcome === 'detached-busy') busy = true;
      }
    }
    const group = this.fanotify?.group;
    for (const path of drop) {
      if (!group || keep.has(path)) continue;
      try {
        unmarkPreAccess(group.fd, path);
      } catch (err) {
        log.warn({ path, err: errorText(err) }, 'cannot remove a stale fanotify mark');
      }
    }
  }

  persist(): void {
    writeRecordFile(this.recordFile, {
      supervisorPid: process.pid, cacheDir: this.cacheDir, mounts: [...this.records.values()], ...(this.cachefiles ? { cachefiles: this.cachefiles } : {}),
      ...(this.fanotify ? { fanotify: { fd: this.fanotify.group.fd } } : {}),
    });
  }

  /** Credentials of every mount (memory only): what a successor daemon needs to fetch for them. */
  secretsToHandOver(): Record<string, Credentials> {
    return Object.fromEntries(this.secrets);
  }

  /**
   * After systemd restarted the daemon: the mounts of the record file whose FUSE connections systemd
   * kept (every one of them) are ours again, with the fds it passed; the credentials too. Returns the
   * number adopted and the mounts that are dead (a connection missing): the caller undoes those. Passed
   * fds no record claims are closed and leave the store.
   */
  adoptFromStore(passed: PassedFds): { adopted: number; dead: MountRecord[] } {
    const file = readRecordFile(this.recordFile);
    const fuseNames = (m: MountRecord): string[] => m.objects.flatMap((o) => (o.kind === 'fuse' ? [fuseFdName(o.path)] : []));
    const kept = (file?.mounts ?? []).filter((m) => fuseNames(m).every((n) => passed.fds.has(n)));
    const dead = (file?.mounts ?? []).filter((m) => !kept.includes(m));
    const cachefiles = file?.cachefiles ? passed.fds.get(CACHEFILES_FD_NAME) : undefined;
    this.adopt(kept, (o) => passed.fds.get(fuseFdName(o.path))!, passed.secrets, cachefiles === undefined ? undefined : { ...file!.cachefiles!, fd: cachefiles });
    const claimed = new Set([...kept.flatMap(fuseNames), ...(cachefiles === undefined ? [] : [CACHEFILES_FD_NAME])]);
    const group = passed.fds.get(FANOTIFY_FD_NAME);
    if (group !== undefined) {
      claimed.add(FANOTIFY_FD_NAME);
      if (this.fanotify) {
        closeQuietly(group); // the holder's copy came first: the same group
      } else {
        // The holder died while no daemon ran: the store's copy kept the group (and its pending events).
        log.warn('the fanotify group holder was gone: the group is taken from systemd\'s store, with a new holder');
        this.fanotify = { group: new FanotifyGroup(group), holderPid: 0, served: true };
        this.keepRetainedMarks();
        this.holdFanotify();
      }
    }
    for (const [name, fd] of passed.fds) {
      if (claimed.has(name)) continue;
      closeQuietly(fd);
      this.store?.drop(name);
    }
    this.store?.keepSecrets(this.secretsToHandOver());
    return { adopted: kept.length, dead };
  }

  /** How many fds systemd's store must hold for every mount to outlive this process: each FUSE connection, /dev/cachefiles, the fanotify group, the credentials. */
  storedFdsNeeded(): number {
    let n = (this.cachefiles ? 1 : 0) + (this.fanotify ? 1 : 0);
    for (const r of this.records.values()) n += r.objects.filter((o) => o.kind === 'fuse').length;
    return n + (this.secrets.size > 0 ? 1 : 0);
  }

  /**
   * Takes over the mounts of the daemon `fromPid` that is handing over (`daemon restart`): duplicates of
   * its kernel fds (pidfd_getfd, while it waits for us), its records with our fd numbers, the
   * credentials it passed, and its fanotify group: held here before it exits, so the group never
   * depends on its holder alone (a group whose last fd closes allows every pending event unfilled).
   */
  adoptFrom(fromPid: number, secrets: Record<string, Credentials>): number {
    const file = readRecordFile(this.recordFile);
    if (!file || file.supervisorPid !== fromPid) throw new MountError(`no records of daemon ${fromPid} to take over in ${this.recordFile}`);
    const cachefiles = file.cachefiles ? { ...file.cachefiles, fd: fdOfProcess(fromPid, file.cachefiles.fd) } : undefined;
    if (file.fanotify) this.fanotify = { group: new FanotifyGroup(fdOfProcess(fromPid, file.fanotify.fd)), holderPid: 0, served: true };
    this.adopt(file.mounts, (o) => fdOfProcess(fromPid, o.fd), secrets, cachefiles);
    return file.mounts.length;
  }

  /** Makes `mounts` ours, each FUSE connection with the fd `fdOf` gives in this process; their credentials and /dev/cachefiles too. */
  private adopt(mounts: MountRecord[], fdOf: (o: KernelObject & { kind: 'fuse' }) => number, secrets: Record<string, Credentials>,
    cachefiles: { fd: number; restoreSupported: boolean } | undefined): void {
    for (const m of mounts) {
      this.records.set(m.id, { ...m, objects: m.objects.map((o): KernelObject => (o.kind === 'fuse' ? { ...o, fd: fdOf(o) } : o)) });
      const creds = secrets[m.id];
      if (creds) this.secrets.set(m.id, creds);
    }
    if (cachefiles) this.cachefiles = cachefiles;
  }

  private record(id: string): MountRecord {
    const r = this.records.get(id);
    if (!r) throw new MountError(`no mount record ${id}`);
    return r;
  }

  /** Records an object just made for mount `id`; if that mount is gone or being undone meanwhile, undoes the object and throws. */
  private async add(id: string, object: KernelObject): Promise<void> {
    const r = this.records.get(id);
    if (r && !this.ending.has(id)) {
      r.objects.push(object);
      this.persist();
      return;
    }
    log.warn({ mount: id, object: describeObject(object) }, 'made for a mount that was undone meanwhile: undoing it');
    if (object.kind === 'fuse') this.store?.drop(fuseFdName(object.path));
    await releaseObject(object, this.fanotify?.group).catch((err: unknown) => log.error({ object: describeObject(object), err: errorText(err) }, 'cannot undo it'));
    throw new MountError(`the mount was undone while its ${describeObject(object)} was being made`);
  }

  async handle<K extends KernelRequest['op']>(req: KernelRequest & { op: K }): Promise<SupervisorResults[K]>;
  async handle(req: KernelRequest): Promise<SupervisorResults[keyof SupervisorResults]> {
    switch (req.op) {
      case 'begin':
        this.records.set(req.record.id, { ...req.record, state: 'mounting', objects: [] });
        if (req.credentials) {
          this.secrets.set(req.record.id, req.credentials);
          this.store?.keepSecrets(this.secretsToHandOver());
        }
        this.persist();
        return null;
      case 'openFuse': {
        this.record(req.id);
        const fd = await mountFuseConnection(req.path, req.fsname, req.options, req.flags);
        this.store?.keep(fuseFdName(req.path), fd);
        await this.add(req.id, { kind: 'fuse', path: req.path, fd });
        return { fd, supervisorPid: process.pid };
      }
      case 'fuseParams': {
        const o = this.record(req.id).objects.find((x) => x.kind === 'fuse' && x.path === req.path);
        if (o?.kind === 'fuse') o.params = req.params;
        this.persist();
        return null;
      }
      case 'attachLoop': {
        this.record(req.id);
        const device = await attachLoop(req.file);
        await this.add(req.id, { kind: 'loop', device });
        return { device };
      }
      case 'swapLoop':
        this.record(req.id);
        swapLoop(req.device, req.file);
        return null;
      case 'mount': {
        this.record(req.id);
        const device = await mountFilesystem(req.source, req.target, req.fstype, req.flags, req.data);
        await this.add(req.id, { kind: 'mount', target: req.target, fstype: req.fstype, ...(device === undefined ? {} : { device }) });
        return null;
      }
      case 'mkdir': {
        this.record(req.id);
        const made = await makeDir(req.path);
        if (made) await this.add(req.id, { kind: 'dir', path: req.path });
        return { made };
      }
      case 'openCachefiles':
        this.record(req.id);
        if (this.cachefiles) return { ...this.cachefiles, fresh: false };
        this.cachefiles = bindCachefiles(this.cacheDir);
        this.store?.keep(CACHEFILES_FD_NAME, this.cachefiles.fd);
        return { ...this.cachefiles, fresh: true };
      case 'openFanotify': {
        const f = this.fanotifyGroup();
        const fresh = !f.served;
        f.served = true;
        return { fd: f.group.fd, fresh, journal: fanotifyJournalPath(this.runDir) };
      }
      case 'markFanotify':
        this.record(req.id);
        await this.add(req.id, { kind: 'fanotify-mark', path: req.path, file: this.fanotifyGroup().group.mark(req.open ?? req.path) });
        return null;
      case 'unmake':
        await this.unmake(this.record(req.id), req.object);
        return null;
      case 'mounted': {
        const r = this.record(req.id);
        r.state = 'mounted';
        if (req.manifestDigest) r.resolve.manifestDigest = req.manifestDigest;
        this.persist();
        return null;
      }
      case 'end':
        await this.end(req.id);
        return null;
    }
  }

  /** Every mount, with its credentials, for a restarted worker. */
  list(): Omit<SupervisorResults['list'], 'restarts'> {
    return {
      fanotify: this.fanotify !== null,
      mounts: [...this.records.values()].map((r) => ({ ...r, ...(this.secrets.has(r.id) ? { credentials: this.secrets.get(r.id) } : {}) })),
      cacheDir: this.cacheDir,
    };
  }

  /** Undoes every object of mount `id` that is left, newest first, then forgets the mount. */
  private async end(id: string): Promise<void> {
    const r = this.records.get(id);
    if (!r) return;
    const failures: string[] = [];
    this.ending.add(id);
    try {
      for (const o of [...r.objects].reverse()) {
        await this.unmake(r, o).catch((err: unknown) => failures.push(`${describeObject(o)}: ${errorText(err)}`));
      }
    } finally {
      this.ending.delete(id);
    }
    if (failures.length > 0) {
      throw new MountError(`could not undo everything for ${r.mountpoint}: ${failures.join('; ')}`, { mountpoint: r.mountpoint });
    }
    this.records.delete(id);
    if (this.secrets.delete(id)) this.store?.keepSecrets(this.secretsToHandOver());
    this.detachedBusy.delete(id);
    this.persist();
  }

  private async unmake(r: MountRecord, object: KernelObject): Promise<void> {
    const index = r.objects.findIndex((o) => sameObject(o, object));
    if (index < 0) return;
    const held = r.objects[index]!;
    if (held.kind === 'fuse') this.store?.drop(fuseFdName(held.path));
    const outcome = await releaseObject(held, this.fanotify?.group, this.detachedBusy.has(r.id));
    if (outcome === 'detached-busy') this.detachedBusy.add(r.id);
    r.objects.splice(index, 1);
    this.persist();
  }

  /**
   * At shutdown, after the worker is gone: undo whatever is left, best effort. The fanotify group is
   * closed (holder ended) unless a detached busy mount still needs its marks: then the holder keeps it,
   * its readers wait (never zeros) and the next daemon adopts the group and answers them.
   */
  async undoAll(): Promise<void> {
    this.stopping = true;
    for (const r of [...this.records.values()]) {
      this.ending.add(r.id);
      for (const o of [...r.objects].reverse()) await this.unmake(r, o).catch(() => undefined);
      this.records.delete(r.id);
      this.ending.delete(r.id);
    }
    this.persist();
    const f = this.fanotify;
    if (!f) return;
    if (f.group.retainedMarks > 0) {
      log.warn({ marks: f.group.retainedMarks, holderPid: f.holderPid }, 'fanotify marks of detached busy mounts remain: the group holder stays (the next daemon adopts it)');
      return;
    }
    endHolder(this.runDir, f.holderPid);
  }
}
