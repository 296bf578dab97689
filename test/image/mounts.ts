/** Kernel erofs mounts of a built image for tests: file-backed (mount(2) with device=) and loop devices. */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { errno, mount, umount2, MNT_DETACH, MS_RDONLY } from '../../src/native/libc.js';
import { materializeBlob } from '../../src/reader/blob-view.js';
import type { ResolvedImage } from '../../src/resolve/types.js';

export interface LocalImageFiles {
  bootstrap: string;
  blobs: string[];
}

/** Bootstrap and uncompressed blob views as local files (the views decompressed from verified frames). */
export async function materializeImage(resolved: ResolvedImage, dir: string): Promise<LocalImageFiles> {
  mkdirSync(dir, { recursive: true });
  const bootstrap = join(dir, 'bootstrap.erofs');
  writeFileSync(bootstrap, await resolved.loadBootstrap());
  const blobs: string[] = [];
  for (const [i, blob] of resolved.image.blobs.entries()) {
    const path = join(dir, `blob-${i + 1}.raw`);
    await materializeBlob(resolved.fetcher, blob, await resolved.loadToc(blob), path);
    blobs.push(path);
  }
  return { bootstrap, blobs };
}

export function deviceOptions(devices: string[]): string | null {
  return devices.length === 0 ? null : devices.map((d) => `device=${d}`).join(',');
}

/** Mount the bootstrap file itself (erofs file-backed mount); returns the unmount function. */
export function mountFileBacked(files: LocalImageFiles, mnt: string): () => void {
  mkdirSync(mnt, { recursive: true });
  if (mount(files.bootstrap, mnt, 'erofs', MS_RDONLY, deviceOptions(files.blobs)) !== 0) {
    throw new Error(`file-backed erofs mount failed: errno ${errno()}`);
  }
  return () => {
    if (umount2(mnt, 0) !== 0) umount2(mnt, MNT_DETACH);
  };
}

/** Mount through read-only loop devices for the bootstrap and every blob; returns the cleanup function. */
export function mountLoop(files: LocalImageFiles, mnt: string): () => void {
  mkdirSync(mnt, { recursive: true });
  const loops: string[] = [];
  const detach = (): void => {
    for (const l of loops) {
      try {
        execFileSync('losetup', ['-d', l], { stdio: 'ignore' });
      } catch {
        /* already gone */
      }
    }
  };
  try {
    for (const f of [files.bootstrap, ...files.blobs]) loops.push(execFileSync('losetup', ['-r', '-f', '--show', f], { encoding: 'utf8' }).trim());
    if (mount(loops[0]!, mnt, 'erofs', MS_RDONLY, deviceOptions(loops.slice(1))) !== 0) throw new Error(`loop erofs mount failed: errno ${errno()}`);
  } catch (err) {
    detach();
    throw err;
  }
  return () => {
    if (umount2(mnt, 0) !== 0) umount2(mnt, MNT_DETACH);
    detach();
  };
}

/** fsck.erofs with every blob as --device; returns its output (throws on failure). */
export function fsckErofs(files: LocalImageFiles): string {
  return execFileSync('fsck.erofs', [...files.blobs.map((b) => `--device=${b}`), files.bootstrap], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 600_000 });
}
