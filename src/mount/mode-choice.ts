/**
 * Which mount mode `auto` picks, and whether a requested mode can work: fscache > fanotify >
 * fuse-blobs > fuse-tree, skipping modes the kernel cannot serve or ondemand does not implement yet.
 */
import { implementedModes } from '../transport/index.js';
import { probeFeatures, type Features } from '../transport/kernel-features.js';
import type { MountMode } from '../transport/types.js';

export interface DetectReport {
  features: Features;
  /** The mode `--mode auto` picks, or null when nothing can work. */
  mode: MountMode | null;
  reason: string;
  /** Why each better mode was passed over, best first. */
  skipped: string[];
}

/** Whether `mode` can work with these features, and why not. */
export function modeUsable(mode: MountMode, f: Features, implemented: readonly MountMode[] = implementedModes()): { ok: boolean; reason: string } {
  const need = (ok: boolean, reason: string): { ok: boolean; reason: string } => ({ ok, reason });
  let kernel: { ok: boolean; reason: string };
  if (mode !== 'fuse-tree' && !f.mountSyscall.supported) return need(false, `needs mount(2) of erofs: ${f.mountSyscall.reason}`);
  switch (mode) {
    case 'fscache':
      kernel = !f.erofs.supported ? need(false, 'no erofs')
        : !f.erofsImages.supported ? need(false, `erofs cannot mount these images: ${f.erofsImages.reason}`)
        : !f.cachefilesOndemand.supported ? need(false, `no cachefiles on-demand mode: ${f.cachefilesOndemand.reason}`)
          : need(true, 'cachefiles on-demand mode and erofs are available (cache hits never leave the kernel)');
      break;
    case 'fanotify':
      kernel = !f.erofsImages.supported ? need(false, `erofs cannot mount these images: ${f.erofsImages.reason}`)
        : !f.erofsFileBacked.supported ? need(false, 'needs erofs file-backed mounts')
        : !f.fanotifyPreContent.supported ? need(false, `no fanotify pre-content events: ${f.fanotifyPreContent.reason}`)
          : need(true, 'fanotify pre-content events and erofs file-backed mounts are available');
      break;
    case 'fuse-blobs':
      kernel = !f.fuse.supported ? need(false, 'no FUSE')
        : !f.erofs.supported ? need(false, 'no erofs')
          : !f.erofsImages.supported ? need(false, `erofs cannot mount these images: ${f.erofsImages.reason}`)
          : !f.erofsFileBacked.supported && !f.loop.supported ? need(false, 'erofs can neither mount files nor loop devices')
            : need(true, `FUSE and erofs are available (erofs over ${f.erofsFileBacked.supported ? 'FUSE files' : 'loop devices'}${f.fusePassthrough.supported ? ', passthrough for complete blobs' : ''})`);
      break;
    case 'fuse-tree':
      kernel = !f.fuse.supported ? need(false, 'no FUSE')
        : f.mountSyscall.supported ? need(true, 'FUSE is available (the whole tree served by ondemand\'s own erofs reader)')
          : f.fusermount.supported ? need(true, 'FUSE through fusermount3 for this user (the whole tree served by ondemand\'s own erofs reader)')
            : need(false, `not root, and no fusermount3: ${f.fusermount.reason}`);
      break;
  }
  if (kernel.ok && !implemented.includes(mode)) return { ok: false, reason: `the kernel supports it, but ondemand does not implement the ${mode} transport yet` };
  return kernel;
}

/** Best first: a kernel path before a FUSE one, blobs served by the kernel's erofs before the whole tree in user space. */
export const MODE_PREFERENCE: readonly MountMode[] = ['fscache', 'fanotify', 'fuse-blobs', 'fuse-tree'];

export function chooseMode(features: Features, implemented: readonly MountMode[] = implementedModes()): { mode: MountMode | null; reason: string; skipped: string[] } {
  const skipped: string[] = [];
  for (const mode of MODE_PREFERENCE) {
    const u = modeUsable(mode, features, implemented);
    if (u.ok) return { mode, reason: skipped.length ? `${u.reason}; passed over: ${skipped.join('; ')}` : u.reason, skipped };
    skipped.push(`${mode}: ${u.reason}`);
  }
  return { mode: null, reason: `no mode can work here: ${skipped.join('; ')}`, skipped };
}

/** Probes this host (the cache dir's filesystem included: fanotify needs one that allows its marks). */
export function detect(cacheDir?: string): DetectReport {
  const features = probeFeatures(cacheDir);
  return { features, ...chooseMode(features) };
}
