/**
 * The bench's baseline, `local`: the same erofs image mounted by the kernel from complete local files
 * (the bootstrap and every blob's uncompressed view), no ondemand in the read path. The files are made
 * by the shipped cache (resolve, open, prefetch every frame, verified) in a scratch cache of their own,
 * then copied out; they are mounted by the same kernel-object functions the daemon's supervisor uses
 * (erofs file-backed where the kernel has it, else on read-only loop devices).
 */
import { copyFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { openCache } from '../cache/backend.js';
import { resolveImageRef } from '../mount/image-source.js';
import { openPinnedImage } from '../mount/pinned-image.js';
import { InProcessKernel } from '../transport/in-process-kernel.js';
import type { Features } from '../transport/kernel-features.js';
import { erofsMountFlags } from '../transport/kernel-objects.js';
import { BenchError, errorText } from '../util/errors.js';
import { UndoStack } from '../util/undo-stack.js';
import type { ImageAccess } from './daemon.js';
import { makeDirs } from '../util/make-dirs.js';

export interface LocalCopy {
  bootstrap: string;
  blobs: string[];
  manifestDigest: string;
  storedBytes: number;
  uncompressedBytes: number;
  bootstrapBytes: number;
}

/** Resolves `ref`, fetches all of it through a scratch cache in `dir`, and copies its files to `dir`. */
export async function makeLocalCopy(ref: string, access: ImageAccess, dir: string): Promise<LocalCopy> {
  makeDirs(dir);
  const scratch = join(dir, 'scratch-cache');
  const undo = new UndoStack();
  const cache = await openCache({ dir: scratch });
  undo.push('scratch cache', async () => {
    await cache.close();
    rmSync(scratch, { recursive: true, force: true });
  });
  try {
    const resolved = await resolveImageRef(ref, {
      insecure: access.insecure,
      credentials: access.credentials ?? null,
      ...(access.platform !== undefined ? { platform: access.platform } : {}),
      ...(cache.metadata ? { metadata: cache.metadata } : {}),
    });
    const { bootstrapPath, blobs } = await openPinnedImage(resolved, cache, undo);
    await Promise.all(blobs.map((b) => b.prefetch()));
    const bootstrap = join(dir, 'bootstrap');
    copyFileSync(bootstrapPath, bootstrap);
    const copies: string[] = [];
    for (const [i, b] of blobs.entries()) {
      if (!b.isComplete()) throw new BenchError(`the local copy of ${ref}: blob ${i + 1} is still incomplete after its prefetch`, { image: ref });
      const copy = join(dir, `blob${i + 1}`);
      copyFileSync(b.dataPath, copy);
      copies.push(copy);
    }
    return {
      bootstrap, blobs: copies,
      manifestDigest: resolved.image.manifestDigest,
      storedBytes: resolved.image.blobs.reduce((n, b) => n + b.size, 0),
      uncompressedBytes: resolved.image.blobs.reduce((n, b) => n + b.uncompressedSize, 0),
      bootstrapBytes: statSync(bootstrap).size,
    };
  } catch (err) {
    throw err instanceof BenchError ? err : new BenchError(`cannot make the local copy of ${ref}: ${errorText(err)}`, { image: ref }, { cause: err });
  } finally {
    await undo.unwind();
  }
}

export interface LocalMount {
  unmount(): Promise<void>;
}

/** Mounts the copy at `mountpoint`: erofs file-backed when the kernel has it, else over loop devices. */
export async function mountLocal(copy: LocalCopy, mountpoint: string, features: Features): Promise<LocalMount> {
  const undo = new UndoStack();
  const broker = new InProcessKernel().broker(undo);
  const unmount = async (): Promise<void> => {
    const failures = await undo.unwind();
    if (failures.length > 0) throw new BenchError(`cannot unmount the local baseline at ${mountpoint}: ${failures.join('; ')}`, { mountpoint });
  };
  try {
    if (features.erofsFileBacked.supported) {
      await broker.mount(copy.bootstrap, mountpoint, 'erofs', erofsMountFlags(false), copy.blobs.map((p) => `device=${p}`).join(','));
    } else {
      const boot = await broker.attachLoop(copy.bootstrap);
      const devices: string[] = [];
      for (const b of copy.blobs) devices.push(await broker.attachLoop(b));
      await broker.mount(boot, mountpoint, 'erofs', erofsMountFlags(false), devices.map((d) => `device=${d}`).join(','));
    }
  } catch (err) {
    await undo.unwind();
    throw new BenchError(`cannot mount the local baseline at ${mountpoint}: ${errorText(err)}`, { mountpoint }, { cause: err });
  }
  return { unmount };
}
