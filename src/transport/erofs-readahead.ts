/**
 * read_ahead_kb of a file-backed erofs mount over fuse-blobs: how much the kernel asks the daemon for
 * at once when reading a blob with holes.
 */
import { log } from '../util/log.js';
import { bdiReadAheadKb, erofsBdis, newErofsBdi, setBdiReadAheadKb } from '../native/bdi.js';

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

/** An erofs mount's readahead raised by withErofsReadAhead: `restore()` puts the kernel's value back. */
export interface RaisedReadAhead {
  restore(): void;
}

/**
 * Runs `mount` (a file-backed erofs mount at target), then sets read_ahead_kb of the bdi it made when
 * readAheadKb is given. Best effort: a mount whose bdi cannot be told apart (another erofs mount made
 * meanwhile) keeps the kernel's readahead (logged). Returns how to undo the raise (once the blobs are
 * complete the kernel's value reads sequential files from disk ~3 % faster: bench/RESULTS.md).
 */
export async function withErofsReadAhead(target: string, readAheadKb: number | undefined, mount: () => Promise<void>): Promise<RaisedReadAhead | undefined> {
  const before = erofsBdis();
  await mount();
  if (readAheadKb === undefined) return undefined;
  const bdi = newErofsBdi(before, erofsBdis());
  if (bdi === undefined) {
    log.info({ mountpoint: target }, 'erofs bdi of the new mount not found (another erofs mount made meanwhile?); readahead left as is');
    return undefined;
  }
  try {
    const kernel = bdiReadAheadKb(bdi);
    setBdiReadAheadKb(bdi, readAheadKb);
    return {
      restore: () => {
        try {
          setBdiReadAheadKb(bdi, kernel);
        } catch (err) {
          log.info({ mountpoint: target, bdi, err: String(err) }, 'cannot restore erofs read_ahead_kb (unmounted?)');
        }
      },
    };
  } catch (err) {
    log.warn({ mountpoint: target, bdi, err: String(err) }, 'cannot set erofs read_ahead_kb');
    return undefined;
  }
}
