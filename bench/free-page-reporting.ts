/**
 * On this VM free pages are handed back to the host as soon as they are free (page_reporting
 * min_free_ms 0), so pages evicted between runs fault in again at random. Deferring that for a run
 * made rounds far steadier (warm-mem `fuse` seq 3.3-6.2 GB/s instead of 0.25-5.0). Returns the restore,
 * which also runs if the bench is interrupted (mounts made so far are left for the operator to detach).
 */
import { readFileSync, writeFileSync } from 'node:fs';

const PAGE_REPORTING_MIN_FREE_MS = '/sys/module/page_reporting/parameters/min_free_ms';

export function deferFreePageReporting(): () => void {
  let before: string;
  try {
    before = readFileSync(PAGE_REPORTING_MIN_FREE_MS, 'utf8').trim();
    writeFileSync(PAGE_REPORTING_MIN_FREE_MS, '60000');
  } catch {
    return () => {};
  }
  process.stdout.write(`free page reporting deferred for the run (min_free_ms ${before} -> 60000)\n`);
  const restore = (): void => writeFileSync(PAGE_REPORTING_MIN_FREE_MS, before);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      restore();
      process.kill(process.pid, 'SIGKILL');
    });
  }
  return restore;
}
