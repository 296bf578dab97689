/** The mode `auto` picks and whether a requested mode can work, over feature sets of real kernels. */
import { describe, expect, it } from 'vitest';
import { FEATURE_NAMES, type Features } from '../transport/kernel-features.js';
import type { MountMode } from '../transport/types.js';
import { chooseMode, modeUsable } from './mode-choice.js';

type Have = Partial<Record<(typeof FEATURE_NAMES)[number], boolean>>;

function features(have: Have): Features {
  const f = {} as Features;
  for (const name of FEATURE_NAMES) f[name] = { supported: have[name] ?? false, reason: `${name} ${have[name] ? 'yes' : 'no'}` };
  return f;
}

const ALL: readonly MountMode[] = ['fscache', 'fanotify', 'fuse-blobs', 'fuse-tree'];
const TODAY: readonly MountMode[] = ['fscache', 'fanotify', 'fuse-blobs'];
const WITHOUT_FANOTIFY: readonly MountMode[] = ['fscache', 'fuse-blobs'];

// Feature sets: what each kernel has (docs of the transports and compat/ say where each comes from).
const KERNEL_6_18: Have = { mountSyscall: true, erofs: true, erofsImages: true, erofsFileBacked: true, fuse: true, fusePassthrough: true, fanotifyPreContent: true, loop: true };
const KERNEL_6_1_ONDEMAND: Have = { mountSyscall: true, erofs: true, erofsImages: true, cachefilesOndemand: true, fuse: true, loop: true };
const KERNEL_6_1_PLAIN: Have = { mountSyscall: true, erofs: true, erofsImages: true, fuse: true, loop: true };
/** erofs without chunk-based files on extra devices (5.15 and 5.16 added them). */
const KERNEL_5_10: Have = { mountSyscall: true, erofs: true, fuse: true, loop: true };
const NO_EROFS: Have = { mountSyscall: true, fuse: true, loop: true };
/** 6.18 seen by an unprivileged user: FUSE through fusermount3 only. */
const UNPRIVILEGED: Have = { ...KERNEL_6_18, mountSyscall: false, fusermount: true };
const NOTHING: Have = {};

describe('chooseMode', () => {
  const table: [string, Have, readonly MountMode[], MountMode | null, RegExp][] = [
    ['6.18 with every transport', KERNEL_6_18, ALL, 'fanotify', /fanotify pre-content events/],
    ['6.18 today', KERNEL_6_18, TODAY, 'fanotify', /fanotify pre-content events/],
    ['6.18 with the cache dir on tmpfs', { ...KERNEL_6_18, fanotifyPreContent: false }, TODAY, 'fuse-blobs', /passed over: fscache: .*; fanotify: no fanotify pre-content events/],
    ['6.18 without the fanotify transport', KERNEL_6_18, WITHOUT_FANOTIFY, 'fuse-blobs', /FUSE files, passthrough/],
    ['6.1 with on-demand', KERNEL_6_1_ONDEMAND, TODAY, 'fscache', /cachefiles on-demand mode and erofs/],
    ['6.1 with on-demand and every transport', KERNEL_6_1_ONDEMAND, ALL, 'fscache', /cachefiles/],
    ['6.1 without on-demand', KERNEL_6_1_PLAIN, TODAY, 'fuse-blobs', /loop devices/],
    ['no erofs, every transport', NO_EROFS, ALL, 'fuse-tree', /FUSE is available/],
    ['5.10: erofs that cannot mount our images', KERNEL_5_10, ALL, 'fuse-tree', /passed over: .*fuse-blobs: erofs cannot mount these images/],
    ['6.18, not root', UNPRIVILEGED, ALL, 'fuse-tree', /fusermount3 .*passed over: fscache: needs mount\(2\) of erofs/],
    ['no erofs today', NO_EROFS, TODAY, null, /no mode can work here/],
    ['nothing', NOTHING, ALL, null, /no mode can work here/],
  ];
  it.each(table)('%s', (_name, have, implemented, mode, reason) => {
    const choice = chooseMode(features(have), implemented);
    expect(choice.mode).toBe(mode);
    expect(choice.reason).toMatch(reason);
    // Every better mode passed over is named with why, best first.
    const better = ALL.slice(0, mode ? ALL.indexOf(mode) : ALL.length);
    expect(choice.skipped.map((s) => s.split(':')[0])).toEqual(better);
  });
});

describe('modeUsable', () => {
  const table: [MountMode, Have, readonly MountMode[], boolean, RegExp][] = [
    ['fscache', KERNEL_6_18, ALL, false, /no cachefiles on-demand mode/],
    ['fscache', { ...KERNEL_6_1_ONDEMAND, erofs: false }, ALL, false, /no erofs/],
    ['fanotify', KERNEL_6_1_PLAIN, ALL, false, /needs erofs file-backed mounts/],
    ['fanotify', { ...KERNEL_6_18, fanotifyPreContent: false }, ALL, false, /no fanotify pre-content events/],
    ['fanotify', KERNEL_6_18, WITHOUT_FANOTIFY, false, /does not implement the fanotify transport/],
    ['fanotify', KERNEL_6_18, TODAY, true, /fanotify pre-content events and erofs file-backed mounts/],
    ['fuse-blobs', { mountSyscall: true, erofs: true, erofsImages: true, fuse: true }, ALL, false, /neither mount files nor loop devices/],
    ['fuse-blobs', { mountSyscall: true, erofs: true, erofsImages: true, loop: true }, ALL, false, /no FUSE/],
    ['fuse-blobs', KERNEL_5_10, ALL, false, /erofs cannot mount these images/],
    ['fuse-blobs', KERNEL_6_18, ALL, true, /erofs over FUSE files, passthrough for complete blobs/],
    ['fuse-tree', NOTHING, ALL, false, /no FUSE/],
    ['fuse-tree', { ...UNPRIVILEGED, fusermount: false }, ALL, false, /not root, and no fusermount3/],
    ['fuse-blobs', UNPRIVILEGED, ALL, false, /needs mount\(2\) of erofs/],
    ['fuse-tree', NO_EROFS, TODAY, false, /does not implement the fuse-tree transport/],
  ];
  it.each(table)('%s with %j', (mode, have, implemented, ok, reason) => {
    const u = modeUsable(mode, features(have), implemented);
    expect(u.ok).toBe(ok);
    expect(u.reason).toMatch(reason);
  });
});
