/** Steps the image round-trip tests share: build a tree with the CLI, then mount or export it and compare. */
import { expect } from 'vitest';
import { join } from 'node:path';
import { resolveImage, type ResolvedImage } from '../../src/resolve/index.js';
import { compareTrees } from '../helpers/tree-compare.js';
import { materializeImage, type LocalImageFiles } from './mounts.js';
import { ondemand } from './cli.js';

export interface BuiltImage {
  resolved: ResolvedImage;
  files: LocalImageFiles;
}

/** `ondemand build src ref`, then the image resolved and its bootstrap and blobs written under `workDir/local`. */
export async function buildImage(src: string, ref: string, workDir: string, buildArgs: string[] = []): Promise<BuiltImage> {
  const r = ondemand(['build', src, ref, ...buildArgs]);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  const resolved = await resolveImage(ref);
  try {
    return { resolved, files: await materializeImage(resolved, join(workDir, 'local')) };
  } catch (err) {
    await resolved.fetcher.close();
    throw err;
  }
}

/** Mounts with `mount`, expects the tree to equal `src`, runs `alsoCheck` on the mount, and always unmounts. */
export function expectMountEqualsSource(
  mount: (files: LocalImageFiles, mnt: string) => () => void, files: LocalImageFiles, mnt: string, src: string,
  alsoCheck?: (mnt: string) => void,
): void {
  const unmount = mount(files, mnt);
  try {
    expect(compareTrees(src, mnt)).toEqual([]);
    alsoCheck?.(mnt);
  } finally {
    unmount();
  }
}

/** `ondemand export ref out` succeeds quietly and writes a tree equal to `src`. */
export function expectExportEqualsSource(ref: string, out: string, src: string): void {
  const r = ondemand(['export', ref, out]);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  expect(compareTrees(src, out)).toEqual([]);
}
