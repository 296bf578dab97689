/**
 * Mounting the kernel's erofs on top of a fuse-blobs directory.
 *
 * Arrangement 'file' (default, no loop devices), measured on 6.18:
 *   - FUSE without passthrough: primary = <fuse>/bootstrap, device= <fuse>/<blobId>... (all file-backed).
 *   - FUSE with passthrough negotiated: the FUSE superblock counts as a stacked fs and erofs refuses a
 *     file on it as the *primary* device (mount fails ENOTBLK, dmesg "file-backed mounts cannot be
 *     applied to stacked fses"), while extra `device=` files on it are accepted. So the primary is the
 *     local bootstrap file in the cache dir (ext4) and only the blob devices are FUSE files.
 *     Verified: tree identical to the source (diff -r), complete blobs read with 0 FUSE READs.
 * Arrangement 'loop': one read-only loop device (LOOP_CONFIGURE, autoclear) per FUSE file, for
 *   kernels without erofs file-backed mounts; the loops disappear when erofs lets go of them.
 * Every blocking call that makes the kernel talk to our own FUSE server (open of a FUSE file, loop
 * configure, mount, umount) runs off the main thread, which must stay free to answer it.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { openSync } from 'node:fs';
import { join } from 'node:path';
import { MS_RDONLY, MNT_DETACH } from '../../native/libc.js';
import { closeQuietly, loopConfigureAsync, loopGetFree, mountAsync, umount2Async } from '../../native/fuse.js';
import { MountError } from '../../util/errors.js';
import { log } from '../../util/log.js';
import { erofsBdis, newErofsBdi, setBdiReadAheadKb } from '../../native/bdi.js';
import { BOOTSTRAP_NAME } from './filesystem.js';

export type ErofsArrangement = 'file' | 'loop';

/**
 * read_ahead_kb of erofs mounted on FUSE blob files with holes. Those files are opened
 * FOPEN_DIRECT_IO, so erofs's readahead is what the kernel asks the daemon for at once: with the
 * default 128 KiB a sequential read waits on one 128 KiB READ after another (warm 1 GiB read
 * 0.29-0.38x of local), with 1 MiB whole frames are in flight (1.02-1.35x; bench/RESULTS.md). Not
 * more: mmap faults read around by this much, and every byte of it is fetched on a cold start. Mounts
 * whose blobs are all complete keep the kernel's default: their blobs are read through a page cache
 * (passthrough's or the FUSE file's), and with 1 MiB reads of them from disk ran several times slower
 * (passthrough 0.5-0.9 GB/s instead of 4.3; cached FUSE file 0.4-0.7 instead of 0.6-3.0).
 */
export const EROFS_READ_AHEAD_KB = 1024;

/** The erofs read_ahead_kb for a mount: EROFS_READ_AHEAD_KB if any blob has holes. */
export function erofsReadAheadFor(blobs: readonly { isComplete(): boolean }[]): number | undefined {
  return blobs.some((b) => !b.isComplete()) ? EROFS_READ_AHEAD_KB : undefined;
}

export interface ErofsOverFuseBlobsOptions {
  /** Where the fuse-blobs filesystem is mounted. */
  fuseDir: string;
  /** Whether that FUSE connection negotiated passthrough (decides the primary device in 'file'). */
  fusePassthrough: boolean;
  /** The same bootstrap as a local file (used as primary when FUSE has passthrough). */
  bootstrapPath: string;
  /** Blob file names in erofs device-table order. */
  blobNames: readonly string[];
  /** The erofs mountpoint. */
  target: string;
  arrangement?: ErofsArrangement;
  /** Loop devices with direct I/O (no second page-cache copy). Default false. */
  loopDirectIo?: boolean;
  /** 'file' only: erofs's `directio` option (Linux 6.13+), O_DIRECT reads of the blob files. */
  directIo?: boolean;
  /**
   * 'file' only: read_ahead_kb of the new erofs mount's bdi (the kernel's default is 128). With the
   * blob files read by READs, erofs's readahead decides how much is asked for at once. Default: left
   * as the kernel made it (see erofsReadAheadFor).
   */
  readAheadKb?: number;
}

export interface ErofsMount {
  target: string;
  arrangement: ErofsArrangement;
  /** What mount(2) got as source and in device=. */
  primary: string;
  devices: string[];
  /** Loop devices made for this mount (autoclear). */
  loops: string[];
}

export async function mountErofsOverFuseBlobs(o: ErofsOverFuseBlobsOptions): Promise<ErofsMount> {
  const arrangement = o.arrangement ?? 'file';
  const fuseBootstrap = join(o.fuseDir, BOOTSTRAP_NAME);
  const blobFiles = o.blobNames.map((n) => join(o.fuseDir, n));
  const ctx = { mountpoint: o.target };
  if (arrangement === 'file') {
    const primary = o.fusePassthrough ? o.bootstrapPath : fuseBootstrap;
    await withErofsReadAhead(o.target, o.readAheadKb, () => mountErofs(primary, blobFiles, o.target, o.directIo ? ['directio'] : []));
    return { target: o.target, arrangement, primary, devices: blobFiles, loops: [] };
  }
  const held: { loopFd: number; path: string }[] = [];
  try {
    for (const file of [fuseBootstrap, ...blobFiles]) held.push(await attachLoop(file, o.loopDirectIo ?? false));
    const [primary, ...devices] = held.map((h) => h.path);
    await mountErofs(primary!, devices, o.target);
    return { target: o.target, arrangement, primary: primary!, devices, loops: held.map((h) => h.path) };
  } catch (err) {
    throw err instanceof MountError ? err : new MountError(`cannot set up loop devices for ${o.target}`, ctx, { cause: err });
  } finally {
    // erofs now holds the block devices; with autoclear they go away when it lets go (or right now on failure).
    for (const h of held) closeQuietly(h.loopFd);
  }
}

/** Unmounts erofs; `lazy` detaches it when busy. Loop devices clear themselves (autoclear). */
export async function unmountErofs(m: Pick<ErofsMount, 'target'>, options: { lazy?: boolean } = {}): Promise<void> {
  const r = await umount2Async(m.target, 0);
  if (r.result === 0 || r.errno === 22 /* not mounted */) return;
  if (r.errno === 16 /* EBUSY */ && options.lazy) {
    const d = await umount2Async(m.target, MNT_DETACH);
    if (d.result === 0) return;
  }
  throw new MountError(`cannot unmount ${m.target}: errno ${r.errno}`, { mountpoint: m.target }, { errno: r.errno });
}

/**
 * Runs `mount` (a file-backed erofs mount at target), then sets read_ahead_kb of the bdi it made when
 * readAheadKb is given. Best effort: a mount whose bdi cannot be told apart (another erofs mount made
 * meanwhile) keeps the kernel's readahead (logged).
 */
export async function withErofsReadAhead(target: string, readAheadKb: number | undefined, mount: () => Promise<void>): Promise<void> {
  const before = erofsBdis();
  await mount();
  if (readAheadKb === undefined) return;
  const bdi = newErofsBdi(before, erofsBdis());
  if (bdi === undefined) {
    log.info({ mountpoint: target }, 'erofs bdi of the new mount not found (another erofs mount made meanwhile?); readahead left as is');
    return;
  }
  try {
    setBdiReadAheadKb(bdi, readAheadKb);
  } catch (err) {
    log.warn({ mountpoint: target, bdi, err: String(err) }, 'cannot set erofs read_ahead_kb');
  }
}

async function mountErofs(primary: string, devices: readonly string[], target: string, extra: readonly string[] = []): Promise<void> {
  for (const d of devices) {
    if (d.includes(',')) throw new MountError(`device path contains a comma: ${d}`, { mountpoint: target });
  }
  // Every blob must be passed, in device-table order: without device= erofs mounts and then fails reads.
  const data = [...devices.map((d) => `device=${d}`), ...extra].join(',');
  const r = await mountAsync(primary, target, 'erofs', MS_RDONLY, data === '' ? null : data);
  if (r.result !== 0) {
    const hint = r.errno === 15 ? ' (ENOTBLK: erofs refuses this primary file, e.g. on a stacked fs or tmpfs)' : '';
    throw new MountError(`cannot mount erofs at ${target}: errno ${r.errno}${hint}`, { mountpoint: target, path: primary }, { errno: r.errno });
  }
}

async function attachLoop(file: string, directIo: boolean): Promise<{ loopFd: number; path: string }> {
  const backing: FileHandle = await open(file, 'r');
  try {
    const control = openSync('/dev/loop-control', 'r+');
    try {
      for (let attempt = 0; attempt < 8; attempt++) {
        const n = loopGetFree(control);
        if (n < 0) throw new MountError(`no free loop device: errno ${-n}`, { path: file }, { errno: -n });
        const path = `/dev/loop${n}`;
        const loop = await open(path, 'r');
        const r = await loopConfigureAsync(loop.fd, backing.fd, { directIo });
        if (r.result === 0) {
          // Keep the raw fd: closing it (last opener) before erofs opens the device would autoclear it.
          const loopFd = openSync(path, 'r');
          await loop.close();
          return { loopFd, path };
        }
        await loop.close();
        if (r.errno !== 16 /* EBUSY: raced with another user */) {
          throw new MountError(`LOOP_CONFIGURE ${path} failed: errno ${r.errno}`, { path: file }, { errno: r.errno });
        }
        log.debug({ path }, 'loop device taken meanwhile; retrying');
      }
      throw new MountError('no free loop device after retries', { path: file });
    } finally {
      closeQuietly(control);
    }
  } finally {
    await backing.close();
  }
}
