/**
 * Mounting through the product's transports from tests and benchmarks: the TransportContext the
 * daemon's MountManager builds, kernel objects made in this process (InProcessKernel) by the same
 * functions the supervisor uses, and unmounting by unwinding the mount's undo stack, as `umount` does.
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import type { CachedBlob } from '../../src/cache/types.js';
import { abortFuseConnection, mountDevice } from '../../src/fuse/connection.js';
import { MNT_DETACH, umount2 } from '../../src/native/libc.js';
import { InProcessKernel } from '../../src/transport/in-process-kernel.js';
import type { KernelObject } from '../../src/transport/kernel-broker.js';
import { probeFeatures, type Features } from '../../src/transport/kernel-features.js';
import type { ActiveTransport, TransportContext } from '../../src/transport/types.js';
import { UndoStack } from '../../src/util/undo-stack.js';

/** What a test needs of a Transport, typed by what its mount returns. */
export interface MountingTransport<A extends ActiveTransport> {
  mount(ctx: TransportContext): Promise<A>;
  reattach?(ctx: TransportContext, objects: readonly KernelObject[]): Promise<A>;
}

let probed: Features | undefined;

/** What this kernel supports, probed once per process (as the daemon does when it starts). */
export function hostFeatures(): Features {
  probed ??= probeFeatures();
  return probed;
}

/** The arrangement the daemon makes on a kernel without FUSE passthrough. */
export const WITHOUT_PASSTHROUGH: Partial<Features> = {
  fusePassthrough: { supported: false, reason: 'test: as on a kernel without FUSE passthrough' },
};
/** The arrangement the daemon makes on a kernel without file-backed erofs: loop devices. */
export const WITHOUT_FILE_BACKED_EROFS: Partial<Features> = {
  erofsFileBacked: { supported: false, reason: 'test: as on a kernel without file-backed erofs' },
};

export interface TransportMountOptions {
  mountpoint: string;
  /** The mount's private directory (the transport makes and removes it). */
  privateDir: string;
  bootstrapPath: string;
  blobs: CachedBlob[];
  image?: string;
  prefetch?: boolean;
  /** Overrides of this host's features, to get the arrangement another kernel would. */
  features?: Partial<Features>;
  fuseReader?: TransportContext['fuseReader'];
}

export interface TransportMount<A extends ActiveTransport> {
  readonly ctx: TransportContext;
  readonly active: A;
  /** Holds the mount's kernel objects, as the daemon's supervisor does. */
  readonly kernel: InProcessKernel;
  /** Unwinds the mount's undo stack (as MountManager.umount); throws when a step failed. */
  unmount(): Promise<void>;
}

function unmounter(undo: UndoStack): () => Promise<void> {
  return async () => {
    const failures = await undo.unwind();
    if (failures.length > 0) throw new Error(`unmount failed: ${failures.join('; ')}`);
  };
}

/** Runs a transport's mount or reattach; on failure unwinds what it made and rethrows (as MountManager.mount). */
async function served<A extends ActiveTransport>(ctx: TransportContext, kernel: InProcessKernel, undo: UndoStack, start: () => Promise<A>): Promise<TransportMount<A>> {
  try {
    return { ctx, active: await start(), kernel, unmount: unmounter(undo) };
  } catch (err) {
    await undo.unwind();
    throw err;
  }
}

export function mountTransport<A extends ActiveTransport>(transport: MountingTransport<A>, o: TransportMountOptions): Promise<TransportMount<A>> {
  const kernel = new InProcessKernel();
  const undo = new UndoStack();
  const ctx: TransportContext = {
    id: basename(o.privateDir),
    mountpoint: o.mountpoint,
    image: o.image ?? 'test',
    bootstrapPath: o.bootstrapPath,
    blobs: o.blobs,
    kernel: kernel.broker(undo),
    features: { ...hostFeatures(), ...o.features },
    privateDir: o.privateDir,
    prefetch: o.prefetch ?? false,
    allowDevices: false,
    ...(o.fuseReader ? { fuseReader: o.fuseReader } : {}),
  };
  return served(ctx, kernel, undo, () => transport.mount(ctx));
}

/**
 * Serves the kernel objects of `m` again, as a restarted daemon worker does (stop `m.active` first:
 * the dead worker's part). Unmounting the result unmakes those objects, then stops serving.
 */
export function reattachTransport<A extends ActiveTransport>(transport: MountingTransport<A>, m: TransportMount<A>): Promise<TransportMount<A>> {
  const reattach = transport.reattach?.bind(transport);
  if (!reattach) throw new Error('this transport cannot re-attach');
  const undo = new UndoStack();
  const ctx: TransportContext = { ...m.ctx, kernel: m.kernel.broker(undo) };
  return served(ctx, m.kernel, undo, async () => {
    const active = await reattach(ctx, [...m.kernel.objects]);
    undo.push(`kernel objects of ${m.ctx.mountpoint}`, () => m.unmount());
    return active;
  });
}

/** The device of the mount at `path`, or null when nothing is mounted there. */
function mountDeviceOrNull(path: string): string | null {
  try {
    return mountDevice(path);
  } catch {
    return null;
  }
}

export function mountpoints(): string[] {
  return readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1] ?? '');
}

/**
 * After a test, whatever happened: unmounts `m` if it is still there (aborting its FUSE connection if
 * that was not enough), unmakes any object left, detaches whatever is still mounted at `paths`.
 */
export async function tearDownMount(m: TransportMount<ActiveTransport> | undefined, ...paths: string[]): Promise<void> {
  if (m) {
    const fuse = m.kernel.objects.find((o) => o.kind === 'fuse');
    const device = fuse?.kind === 'fuse' ? mountDeviceOrNull(fuse.path) : null;
    await m.unmount().catch(() => undefined);
    // Only while our connection is still mounted there: once it ended, its device number can belong to
    // another test's new connection, which an abort by number would end.
    if (device !== null && fuse?.kind === 'fuse' && mountDeviceOrNull(fuse.path) === device) abortFuseConnection(device);
    await m.kernel.unmakeAll().catch(() => undefined);
  }
  for (const p of paths) if (mountpoints().includes(p)) umount2(p, MNT_DETACH);
}
