/** Clean-up shared by the fuse-blobs tests: whatever a failed test left mounted goes, even a hung FUSE. */
import { readFileSync } from 'node:fs';
import type { FuseBlobsMount } from '../../src/transport/fuse-blobs/mount.js';
import { abortFuseConnection } from '../../src/fuse/mount.js';
import { MNT_DETACH, umount2 } from '../../src/native/libc.js';

export function mountpoints(): string[] {
  return readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1] ?? '');
}

/** Unmounts `m` lazily (aborting its FUSE connection if that was not enough), then detaches any leftover mount. */
export async function tearDownFuseBlobs(m: FuseBlobsMount | undefined, target: string, fuseDir: string): Promise<void> {
  if (m) {
    await m.unmount({ lazy: true }).catch(() => undefined);
    if (mountpoints().includes(fuseDir)) abortFuseConnection(m.fuse.device);
  }
  for (const p of [target, fuseDir]) if (mountpoints().includes(p)) umount2(p, MNT_DETACH);
}
