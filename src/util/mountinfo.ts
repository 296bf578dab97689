/**
 * Reading mountinfo (proc(5)): which paths are mount points, with what, and which other mount
 * namespaces still mount a filesystem after this one unmounted it.
 */
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

export interface MountInfoEntry {
  mountpoint: string;
  fstype: string;
  source: string;
  /** `major:minor` of the filesystem (one per superblock: a copy of a mount has the same). */
  device: string;
}

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** The mounts of this process's namespace, or of the namespace of the process whose mountinfo `file` is. */
export function readMountInfo(file = '/proc/self/mountinfo'): MountInfoEntry[] {
  const entries: MountInfoEntry[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line) continue;
    const fields = line.split(' ');
    const sep = fields.indexOf('-');
    if (sep < 0 || fields.length < sep + 3) continue;
    entries.push({ mountpoint: unescape(fields[4]!), fstype: fields[sep + 1]!, source: unescape(fields[sep + 2]!), device: fields[2]! });
  }
  return entries;
}

export function isMountPoint(path: string): boolean {
  return readMountInfo().some((m) => m.mountpoint === path);
}

/** `major:minor` of what is mounted at `mountpoint` (the topmost mount there); undefined when nothing is. */
export function deviceMountedAt(mountpoint: string): string | undefined {
  return readMountInfo().findLast((m) => m.mountpoint === mountpoint)?.device;
}

/**
 * One process (pid) of each other mount namespace that mounts the filesystem `device` of type
 * `fstype` somewhere. A namespace made with private propagation while a mount existed keeps its own
 * copy of it: unmounting ours leaves the filesystem alive and read there.
 */
export function namespacesMounting(device: string, fstype: string): number[] {
  const own = namespaceOf('self');
  const seen = new Set<string>(own === undefined ? [] : [own]);
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const ns = namespaceOf(name);
    if (ns === undefined || seen.has(ns)) continue;
    let mounts: MountInfoEntry[];
    try {
      mounts = readMountInfo(`/proc/${name}/mountinfo`);
    } catch {
      continue; // the process ended meanwhile: another of its namespace may be read
    }
    seen.add(ns);
    if (mounts.some((m) => m.device === device && m.fstype === fstype)) found.push(Number(name));
  }
  return found;
}

function namespaceOf(pid: string): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/mnt`);
  } catch {
    return undefined; // ended, or a kernel thread
  }
}
