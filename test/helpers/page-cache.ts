import { readFileSync } from 'node:fs';

/** How many times anybody on this host has written to /proc/sys/vm/drop_caches (vmstat's counter). */
function pageCacheDrops(): number {
  const line = readFileSync('/proc/vmstat', 'utf8').split('\n').find((l) => l.startsWith('drop_pagecache '));
  return line === undefined ? 0 : Number(line.split(' ')[1]);
}

/**
 * Runs `section` until no other test file dropped the host's page cache while it ran (test files run
 * side by side and several of them `echo 3 > drop_caches`), at most `attempts` times, and returns what
 * the last run returned. For a check that a second read is served from the page cache: a drop by a
 * neighbour in between would make it read again, which says nothing of the code under test.
 */
export async function withoutCacheDrops<T>(section: () => Promise<T>, attempts = 5): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const before = pageCacheDrops();
    const result = await section();
    if (pageCacheDrops() === before || attempt >= attempts) return result;
    console.log(`page cache dropped by another test during the section (attempt ${attempt}); running it again`);
  }
}
