/**
 * Backing-device info in sysfs. A file-backed erofs mount gets its own bdi named `erofs-<n>` (not
 * `<major>:<minor>` like block devices and FUSE), so the only way to find a new mount's bdi is to
 * compare the erofs bdis before and after mounting it.
 */
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';

const BDI_DIR = '/sys/class/bdi';

/** Names of the erofs bdis that exist now. */
export function erofsBdis(): Set<string> {
  try {
    return new Set(readdirSync(BDI_DIR).filter((n) => n.startsWith('erofs-')));
  } catch {
    return new Set();
  }
}

/** The one erofs bdi in `after` but not in `before`; undefined when that is not exactly one. */
export function newErofsBdi(before: ReadonlySet<string>, after: ReadonlySet<string>): string | undefined {
  const added = [...after].filter((n) => !before.has(n));
  return added.length === 1 ? added[0] : undefined;
}

/** Writes read_ahead_kb of bdi `name` (e.g. `0:52`, `erofs-948`); throws what the write threw. */
export function setBdiReadAheadKb(name: string, kb: number): void {
  writeFileSync(`${BDI_DIR}/${name}/read_ahead_kb`, String(kb));
}

/** read_ahead_kb of bdi `name`. */
export function bdiReadAheadKb(name: string): number {
  return Number(readFileSync(`${BDI_DIR}/${name}/read_ahead_kb`, 'utf8').trim());
}
