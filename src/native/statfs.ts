/**
 * statfs(2) through koffi: the filesystem type (f_type magic) under a path, so the cache can refuse
 * filesystems without real holes or with copy-up semantics (tmpfs, ramfs, overlayfs).
 */
import { errno, libc } from './libc.js';
const statfsRaw = libc.func('int statfs(const char *path, _Out_ uint8_t *buf)') as (path: string, buf: Buffer) => number;

/** struct statfs is 120 bytes on 64-bit Linux; f_type (a long) is its first field. */
const STATFS_BUF_SIZE = 256;

export const FS_MAGIC = {
  tmpfs: 0x01021994,
  ramfs: 0x858458f6,
  overlayfs: 0x794c7630,
  ext4: 0xef53,
  xfs: 0x58465342,
  btrfs: 0x9123683e,
} as const;

/** f_type of the filesystem holding `path`. Throws a Node-style error (code ENOENT...) on failure. */
export function statfsType(path: string): number {
  const buf = Buffer.alloc(STATFS_BUF_SIZE);
  if (statfsRaw(path, buf) !== 0) {
    const e = errno();
    const err = new Error(`statfs ${path} failed (errno ${e})`) as Error & { errno: number; code: string };
    err.errno = e;
    err.code = e === 2 ? 'ENOENT' : `E${e}`;
    throw err;
  }
  return Number(buf.readBigUInt64LE(0) & 0xffffffffn);
}

/** Human name of a magic, or its hex. */
export function fsTypeName(magic: number): string {
  const hit = Object.entries(FS_MAGIC).find(([, m]) => m === magic);
  return hit ? hit[0] : `0x${magic.toString(16)}`;
}
