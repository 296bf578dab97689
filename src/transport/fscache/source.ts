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
}

/** A blob from the shared cache backend: READs fetch missing frames through it. */
export function blobSource(blob: CachedBlob): FscacheSource {
  return { size: blob.size, dataPath: blob.dataPath, ensure: (o, l) => blob.ensure(o, l) };
}

/** A complete local file (the bootstrap, or a fully local blob in tests). */
export async function localFileSource(path: string): Promise<FscacheSource> {
  const st = await stat(path);
  return { size: st.size, dataPath: path, ensure: async () => undefined };
}
