/**
 * What the fscache transport serves an object from: a file whose bytes are valid once `ensure`d.
 * A CachedBlob (src/cache/types.ts) is one structurally; a local bootstrap file is another.
 */
import { stat } from 'node:fs/promises';
import type { CachedBlob } from '../../cache/types.js';

export interface FscacheSource {
  /** Exact object size (the copen size). */
  readonly size: number;
  /** File whose bytes [off, off+len) are valid after `ensure(off, len)` resolves. */
  readonly dataPath: string;
  ensure(offset: number, length: number): Promise<void>;
  /**
   * Keeps the ensured bytes in `dataPath` until the returned function is called (a cache lease: the
   * blob is not evicted meanwhile). Absent: the file never changes.
   */
  lease?(): () => void;
}

const noLease = (): void => undefined;

/** A blob from the shared cache backend: READs fetch missing frames through it. */
export function blobSource(blob: CachedBlob): FscacheSource {
  return {
    size: blob.size, dataPath: blob.openDataPath ?? blob.dataPath, ensure: (o, l) => blob.ensure(o, l),
    ...(blob.lease ? { lease: () => blob.lease?.() ?? noLease } : {}),
  };
}

/**
 * Makes [offset, offset+length) present and runs `copy` (which reads it from `dataPath`) under a lease
 * taken before the ensure and released after the copy: an eviction can neither come between the
 * ensure and the read nor truncate the file during it (an eviction already running is waited for by
 * the ensure).
 */
export async function copyEnsured<T>(source: FscacheSource, offset: number, length: number, copy: () => Promise<T>): Promise<T> {
  const release = source.lease?.() ?? noLease;
  try {
    await source.ensure(offset, length);
    return await copy();
  } finally {
    release();
  }
}

/** A complete local file (the bootstrap, or a fully local blob in tests). */
export async function localFileSource(path: string): Promise<FscacheSource> {
  const st = await stat(path);
  return { size: st.size, dataPath: path, ensure: async () => undefined };
}
