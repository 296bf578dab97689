/**
 * Where a daemon keeps its state by default: the host's daemon (root) under /run and /var/cache; an
 * unprivileged user's own daemon (fuse-tree through fusermount3) under that user's runtime and cache
 * dirs (XDG base directories), so users never share, or need, a system-wide directory.
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

const isRoot = (): boolean => process.geteuid?.() === 0;

export function defaultRunDir(): string {
  if (isRoot()) return '/run/ondemand';
  const runtime = process.env.XDG_RUNTIME_DIR;
  return join(runtime !== undefined && runtime !== '' ? runtime : `/run/user/${process.geteuid?.() ?? 0}`, 'ondemand');
}

export function defaultCacheDir(): string {
  if (isRoot()) return '/var/cache/ondemand';
  const cache = process.env.XDG_CACHE_HOME;
  return join(cache !== undefined && cache !== '' ? cache : join(homedir(), '.cache'), 'ondemand');
}

/** CAP_SYS_ADMIN in the effective set (bit 21 of CapEff): mount(2), loop devices, fanotify, cachefiles. */
export function hasCapSysAdmin(): boolean {
  try {
    const capEff = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    return capEff !== undefined && (BigInt(`0x${capEff}`) & (1n << 21n)) !== 0n;
  } catch {
    return isRoot();
  }
}
