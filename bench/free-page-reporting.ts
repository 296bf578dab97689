/**
 * On this VM free pages are handed back to the host as soon as they are free (page_reporting
 * min_free_ms 0), so pages evicted between runs fault in again at random. Deferring that for a run
 * made rounds far steadier (warm-mem `fuse` seq 3.3-6.2 GB/s instead of 0.25-5.0). Returns the restore.
 * With `onSignal` it also runs if the bench is interrupted, which then ends at once (mounts made so far
 * are left for the operator to detach); benches that clean up on a signal themselves
 * (service-daemon.ts' cleanUpOnSignal) call the restore in their clean-up instead.
 */
import { readFileSync, writeFileSync } from 'node:fs';

const PAGE_REPORTING_MIN_FREE_MS = '/sys/module/page_reporting/parameters/min_free_ms';

export function deferFreePageReporting(onSignal = true): () => void {
  let before: string;
  try {
    before = readFileSync(PAGE_REPORTING_MIN_FREE_MS, 'utf8').trim();
    writeFileSync(PAGE_REPORTING_MIN_FREE_MS, '60000');
  } catch {
    return () => {};
  }
  process.stdout.write(`free page reporting deferred for the run (min_free_ms ${before} -> 60000)\n`);
  const restore = (): void => writeFileSync(PAGE_REPORTING_MIN_FREE_MS, before);
  for (const sig of onSignal ? (['SIGINT', 'SIGTERM'] as const) : []) {
    process.once(sig, () => {
      restore();
      process.kill(process.pid, 'SIGKILL');
    });
  }
  return restore;
}
