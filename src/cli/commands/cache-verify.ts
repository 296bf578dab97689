/**
 * `ondemand cache verify [IMAGE|BLOB]`: re-hashes every present frame of all cached blobs, of one
 * image's blobs (their TOCs loaded through the image), or of one blob (id or unique prefix); drops
 * and reports the bad ones, one line each, then a summary. Exit 1 when any was bad. Like `cache gc`:
 * a daemon that owns the cache does it (the blobs of mounted images are checked while they serve, a
 * bad frame fetched again at once); otherwise this process takes the cache lock.
 */
import { out, outJson } from '../command.js';
import { openCache, type BlobVerifyResult } from '../../cache/index.js';
import type { BlobToc } from '../../format/image/types.js';
import { resolveImage } from '../../resolve/index.js';
import { registryAccess } from '../image-ref.js';
import { IntegrityError } from '../../util/errors.js';
import { requestDaemon } from '../../daemon/client.js';

const BLOB_ARG = /^(sha256:)?[0-9a-f]{12,64}$/;

async function tocsOfImage(ref: string): Promise<BlobToc[]> {
  // The configured registry settings (mirrors, retries, credential sources), as every command uses them.
  const resolved = await resolveImage(ref, await registryAccess({ insecure: false }));
  try {
    const tocs: BlobToc[] = [];
    for (const blob of resolved.image.blobs) tocs.push(await resolved.loadToc(blob));
    return tocs;
  } finally {
    await resolved.fetcher.close();
  }
}

/** `results` with a "not cached" entry for each of `blobIds` (ids or prefixes) that none of them is. */
function withMissing(results: BlobVerifyResult[], blobIds: readonly string[]): BlobVerifyResult[] {
  const missing = blobIds.filter((id) => !results.some((r) => r.blobId.startsWith(id.replace(/^sha256:/, ''))));
  return [...results, ...missing.map((blobId): BlobVerifyResult => ({ blobId, checked: 0, bad: [], skipped: 'not cached' }))];
}

/**
 * Runs the verification (in the daemon when `daemonOwns`, else here) and prints its report; throws
 * (exit 1) when a frame was bad.
 */
export async function cacheVerify(dir: string, target: string | undefined, json: boolean, daemonOwns: boolean): Promise<void> {
  const isBlob = target !== undefined && BLOB_ARG.test(target);
  const tocs = target !== undefined && !isBlob ? await tocsOfImage(target) : undefined;
  let results: BlobVerifyResult[];
  const blobIds = tocs ? tocs.map((t) => t.blobId) : isBlob ? [target] : undefined;
  if (daemonOwns) {
    results = await requestDaemon(tocs ? { op: 'verify', tocs } : isBlob ? { op: 'verify', blobIds: [target] } : { op: 'verify' });
  } else {
    const cache = await openCache({ dir, idleCloseMs: 0 });
    try {
      results = await cache.verify({ tocs, blobIds: isBlob ? [target] : undefined });
    } finally {
      await cache.close();
    }
  }
  results = withMissing(results, blobIds ?? []);
  const bad = results.flatMap((r) => r.bad);
  const checked = results.reduce((n, r) => n + r.checked, 0);
  if (json) outJson({ dir, blobs: results, checked, bad: bad.length });
  else {
    for (const b of bad) out(`bad: blob ${b.blobId} frame ${b.frame} offset ${b.offset} length ${b.length} (${b.why === 'hole' ? 'no data' : 'digest mismatch'}; dropped)`);
    for (const r of results) if (r.skipped) out(`skipped: blob ${r.blobId}: ${r.skipped}`);
    out(`cache ${dir}: ${results.filter((r) => !r.skipped).length} blobs, ${checked} frames checked, ${bad.length} bad`);
  }
  if (bad.length > 0) {
    throw new IntegrityError(`cache verify found ${bad.length} bad frame${bad.length === 1 ? '' : 's'} (dropped; fetched again when next read)`, { path: dir });
  }
}
