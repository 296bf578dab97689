/**
 * A resolved image opened in a cache outside a daemon's mount (benchmarks, `ondemand bench`'s local
 * copy): its bootstrap in the cache, every blob opened and pinned, and each step's undo on `undo`
 * (fetcher closed, pins dropped, in-flight fetches settled). MountManager does the same for a mount,
 * with its own timed fetcher.
 */
import type { CacheBackend, CachedBlob } from '../cache/types.js';
import type { ResolvedImage } from '../resolve/types.js';
import type { UndoStack } from '../util/undo-stack.js';
import { settleFetches } from './manager.js';

export async function openPinnedImage(resolved: ResolvedImage, cache: CacheBackend, undo: UndoStack): Promise<{ bootstrapPath: string; blobs: CachedBlob[] }> {
  const ref = resolved.image.ref;
  undo.push(`fetcher of ${ref}`, () => resolved.fetcher.close());
  const bootstrapPath = await cache.bootstrapPath(resolved.image.bootstrap.uncompressedDigest, () => resolved.loadBootstrap());
  const blobs: CachedBlob[] = [];
  for (const descriptor of resolved.image.blobs) {
    const blob = await cache.openBlob(descriptor, { fetcher: resolved.fetcher, toc: await resolved.loadToc(descriptor), image: ref });
    undo.push(`pin of ${descriptor.digest}`, blob.pin());
    blobs.push(blob);
  }
  undo.push('in-flight fetches', () => settleFetches(blobs, ref));
  return { bootstrapPath, blobs };
}
