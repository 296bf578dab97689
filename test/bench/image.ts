/**
 * A small image for the bench tests: busybox (static, Debian's busybox-static) as /bin/sh so a start-up
 * command can run, a few MiB of random bytes in files of several sizes, small files in directories.
 * Built with `ondemand build` and pushed to a real registry, as users' images come.
 */
import { copyFileSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Harness } from '../mount/harness.js';

export const BUSYBOX = '/bin/busybox';

export function makeBenchTree(dir: string): void {
  mkdirSync(join(dir, 'bin'), { recursive: true });
  copyFileSync(BUSYBOX, join(dir, 'bin', 'busybox'));
  symlinkSync('busybox', join(dir, 'bin', 'sh'));
  symlinkSync('busybox', join(dir, 'bin', 'cat'));
  for (const d of ['dev', 'proc', 'tmp']) mkdirSync(join(dir, d));
  mkdirSync(join(dir, 'data'));
  writeFileSync(join(dir, 'data', 'big'), randomBytes(6 * 1024 * 1024));
  writeFileSync(join(dir, 'data', 'medium'), randomBytes(3 * 1024 * 1024 + 123));
  for (let d = 0; d < 4; d++) {
    mkdirSync(join(dir, 'small', `d${d}`), { recursive: true });
    for (let f = 0; f < 25; f++) writeFileSync(join(dir, 'small', `d${d}`, `f${f}`), randomBytes(100 + f * 300));
  }
}

/** Builds the tree into `layout` and pushes it as `ref`. */
export async function buildAndPush(h: Harness, tree: string, layout: string, ref: string): Promise<void> {
  await h.ok('build', tree, `oci:${layout}:t`);
  await h.ok('push', '--insecure', `oci:${layout}:t`, ref);
}
