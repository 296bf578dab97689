/**
 * The fanotify transport: erofs mounted file-backed on the local bootstrap, with one `device=` per
 * blob naming the blob's sparse cache data file; the kernel's erofs reads those files itself, and
 * fanotify pre-content events (FAN_PRE_ACCESS, 6.14+) let this process fill their holes first
 * (../shared/spec/fanotify-hsm.md). Rules the kernel sets:
 * - every data file is marked before erofs opens it (a file opened before its mark never raises
 *   events: its holes would read as zeros); the bootstrap is complete (erofs metadata reads raise none);
 * - never a loop device (loop reads bypass the hook);
 * - the group outlives this process: its owner (the supervisor) holds it and makes the marks.
 * Mount data is one page, so the device paths are short links made for the mount and removed after it.
 */
import { rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { CachedBlob } from '../../cache/types.js';
import { MountError, errorText } from '../../util/errors.js';
import { log } from '../../util/log.js';
import { erofsReadAheadFor, withErofsReadAhead, type RaisedReadAhead } from '../erofs-readahead.js';
import { failPoint } from '../fail-point.js';
import type { KernelBroker, KernelObject } from '../kernel-broker.js';
import { erofsMountFlags } from '../kernel-objects.js';
import type { ActiveTransport, Transport, TransportContext } from '../types.js';
import { EventJournal } from './journal.js';
import { FanotifyServer, type FanotifyStats } from './server.js';

/** mount(2) copies one page of option data. */
const MOUNT_DATA_MAX = 4095;

/** One server per process, shared by every fanotify mount; started on first use. */
let server: Promise<FanotifyServer> | null = null;
/** The server once made (for what must run synchronously, see withdrawIgnoreMarks). */
let madeServer: FanotifyServer | null = null;
/** After a worker restart, events are answered only once every re-attached mount serves its blobs again. */
let heldBack: FanotifyServer | null = null;

function serving(kernel: KernelBroker, holdBack: boolean): Promise<FanotifyServer> {
  server ??= (async () => {
    const { fd, fresh, journal } = await kernel.openFanotify();
    const s = new FanotifyServer(fd, EventJournal.open(journal), fresh);
    // Before any data file is touched (a restarted worker re-opening and verifying them): see ready().
    try {
      await s.ready();
    } catch (err) {
      await s.stop().catch(() => undefined); // this process's fds of the group and journal
      throw err;
    }
    madeServer = s;
    if (holdBack && !fresh) heldBack = s;
    else await s.start();
    return s;
  })().catch((err: unknown) => {
    server = null;
    throw err;
  });
  return server;
}

/**
 * Reads the owner's group before anything else of a restarted worker touches a data file: the cache
 * re-opening the files after their marks raises events of its own, which only the server's thread
 * answers. Other events wait until serveFanotifyGroup (or the re-attach) starts serving.
 */
export async function holdFanotifyGroup(kernel: KernelBroker): Promise<void> {
  await serving(kernel, true);
}

/**
 * Serves the owner's group now, mounts or not: a group adopted from a daemon that died may hold
 * events its readers wait on (answered EIO: no mount serves their files any more).
 */
export async function serveFanotifyGroup(kernel: KernelBroker): Promise<void> {
  const s = await serving(kernel, false);
  if (heldBack === s) heldBack = null;
  await s.start();
}

/**
 * Takes off every ignore mask this process set, at once: called by a worker whose supervisor died,
 * before it exits, so complete blobs raise events (answered EIO by the holder) before anyone can
 * change their files behind the dead daemon's back.
 */
export function withdrawIgnoreMarks(): void {
  madeServer?.unignoreAll();
}

/** This process's fanotify server (tests and benchmarks read its counters), if one was started. */
export function fanotifyServer(): Promise<FanotifyServer> | null {
  return server;
}

export interface ActiveFanotify extends ActiveTransport {
  /** Counters of the process's server (shared by every fanotify mount); blobsDirect: this mount's blobs with ignore marks. */
  stats(): FanotifyStats & { requests: number; blobsDirect: number };
}

class ServedMount implements ActiveFanotify {
  /** Set when the mount raised erofs's readahead for blobs with holes. */
  readAhead: RaisedReadAhead | undefined;

  constructor(private readonly server: FanotifyServer, private readonly blobs: readonly CachedBlob[], private readonly unregister: (() => void)[]) {}

  stats(): FanotifyStats & { requests: number; blobsDirect: number } {
    const s = this.server.stats();
    return { ...s, requests: s.events, blobsDirect: this.server.ignoredCount(this.blobs) };
  }

  /** Prefetch made every blob complete: ignore marks, so no read of them leaves the kernel. */
  async blobsComplete(): Promise<void> {
    this.server.ignoreComplete(this.blobs);
    if (this.server.ignoredCount(this.blobs) === this.blobs.length) {
      this.readAhead?.restore();
      this.readAhead = undefined;
    }
  }

  async stop(): Promise<void> {
    for (const u of this.unregister.splice(0)) u();
  }
}

async function serve(ctx: TransportContext, holdBack: boolean): Promise<ServedMount> {
  const s = await serving(ctx.kernel, holdBack);
  const served = new ServedMount(s, ctx.blobs, ctx.blobs.map((b) => s.register(b, ctx.image)));
  // Pushed before the mount, so it runs after the unmount.
  ctx.kernel.undo.push(`fanotify serving of ${ctx.mountpoint}`, () => served.stop());
  return served;
}

/** `device=` options naming short links to the data files the cache has open (made in ctx.privateDir; removed by the caller). */
function deviceLinks(ctx: TransportContext): { data: string; links: string[] } {
  const links = ctx.blobs.map((b, i) => {
    const link = join(ctx.privateDir, String(i + 1));
    rmSync(link, { force: true });
    symlinkSync(b.openDataPath ?? b.dataPath, link);
    return link;
  });
  const data = links.map((l) => `device=${l}`).join(',');
  if (data.length > MOUNT_DATA_MAX) {
    throw new MountError(`mount options for ${ctx.blobs.length} blobs need ${data.length} bytes (one page is ${MOUNT_DATA_MAX}): the private dir ${ctx.privateDir} is too long`, { mountpoint: ctx.mountpoint, image: ctx.image });
  }
  return { data, links };
}

export const fanotifyTransport: Transport = {
  mode: 'fanotify',

  async mount(ctx: TransportContext): Promise<ActiveFanotify> {
    // Marks first: erofs opens the data files in mount(2), and a file opened unmarked never raises events.
    // The files the cache has open, marked and mounted through its fds: the same files the server
    // answers for, even when another file has taken a path's place since the cache opened it.
    for (const b of ctx.blobs) await ctx.kernel.markFanotify(b.dataPath, b.openDataPath);
    const served = await serve(ctx, false);
    await ctx.kernel.mkdir(ctx.privateDir);
    const { data, links } = deviceLinks(ctx);
    const removeLinks = (): void => { for (const l of links) rmSync(l, { force: true }); };
    ctx.kernel.undo.push('device links', removeLinks);
    failPoint('before-erofs-mount');
    served.readAhead = await withErofsReadAhead(ctx.mountpoint, erofsReadAheadFor(ctx.blobs),
      () => ctx.kernel.mount(ctx.bootstrapPath, ctx.mountpoint, 'erofs', erofsMountFlags(ctx.allowDevices), data));
    removeLinks();
    return served;
  },

  async reattach(ctx: TransportContext, objects: readonly KernelObject[]): Promise<ActiveFanotify> {
    if (!objects.some((o) => o.kind === 'mount')) throw new MountError(`no erofs mount recorded for ${ctx.mountpoint}`, { mountpoint: ctx.mountpoint });
    const marked = new Set(objects.flatMap((o) => (o.kind === 'fanotify-mark' ? [o.path] : [])));
    const unmarked = ctx.blobs.find((b) => !marked.has(b.dataPath));
    if (unmarked) throw new MountError(`no fanotify mark recorded for blob ${unmarked.blobId} of ${ctx.mountpoint}`, { mountpoint: ctx.mountpoint, blob: unmarked.blobId });
    return serve(ctx, true);
  },

  reattachDone(): void {
    const s = heldBack;
    heldBack = null;
    s?.start().catch((err: unknown) => log.error({ err: errorText(err) }, 'cannot serve the fanotify group after re-attaching its mounts'));
  },

  // The event thread sits in poll(2) inside native code: process.exit() would wait for it forever.
  async shutdown(): Promise<void> {
    const s = server;
    server = null;
    madeServer = null;
    heldBack = null;
    const started = await s?.catch(() => null);
    await started?.stop();
  },
};
