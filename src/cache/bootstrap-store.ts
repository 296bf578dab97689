/**
 * Verified, uncompressed erofs bootstraps under <dir>/bootstraps/<sha256 hex>. Written to tmp/,
 * fsync'ed and renamed into place (private-file.ts), so a file under its digest's name is always whole. A file found
 * there is re-hashed once per process before it is handed out.
 */
import { createHash } from 'node:crypto';
import { closeSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzip } from 'node:zlib';
import { promisify } from 'node:util';
import { IntegrityError } from '../util/errors.js';
import { readWhole } from './file-io.js';
import { writeWholeFile } from './private-file.js';
import { openCacheFile } from './safe-files.js';
import type { CacheLayout } from './dir.js';

const gunzipAsync = promisify(gunzip);
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

export class BootstrapStore {
  private readonly pending = new Map<string, Promise<string>>();

  constructor(private readonly layout: CacheLayout) {}

  /** Removes a bootstrap (gc dropped its image's metadata); the next path() fetches it again. */
  async forget(digest: string): Promise<void> {
    const hex = digest.replace(/^sha256:/, '');
    if (!/^[0-9a-f]{64}$/.test(hex) || this.pending.has(hex)) return;
    await rm(join(this.layout.bootstraps, hex), { force: true });
  }

  /**
   * Path of the bootstrap whose uncompressed bytes hash to `digest` (`sha256:<hex>` or hex).
   * `fetch` returns its bytes, uncompressed or gzip (gunzipped here); either way they are verified.
   * A stored one is re-hashed on every call (one per mount; bootstraps are small): a file deleted or
   * changed behind the cache's back is fetched again, never handed to the kernel.
   */
  path(digest: string, fetch: () => Promise<Buffer>): Promise<string> {
    const hex = digest.replace(/^sha256:/, '');
    if (!/^[0-9a-f]{64}$/.test(hex)) return Promise.reject(new IntegrityError(`bad bootstrap digest ${digest}`, { blob: digest }));
    const path = join(this.layout.bootstraps, hex);
    let p = this.pending.get(hex);
    if (!p) {
      p = this.load(hex, path, fetch).finally(() => this.pending.delete(hex));
      this.pending.set(hex, p);
    }
    return p;
  }

  private async load(hex: string, path: string, fetch: () => Promise<Buffer>): Promise<string> {
    const existing = readExisting(path);
    if (existing && sha256(existing) === hex) return path;
    if (existing) await rm(path, { force: true });
    let bytes = await fetch();
    if (sha256(bytes) !== hex && bytes[0] === 0x1f && bytes[1] === 0x8b) {
      bytes = await gunzipAsync(bytes).catch(() => bytes);
    }
    const actual = sha256(bytes);
    if (actual !== hex) {
      throw new IntegrityError(`bootstrap digest mismatch: expected sha256:${hex}, got sha256:${actual}`, { blob: `sha256:${hex}` });
    }
    await writeWholeFile(this.layout.tmp, path, bytes);
    return path;
  }
}

/** A stored bootstrap's bytes (undefined when missing); a symlink or other non-file there is refused. */
function readExisting(path: string): Buffer | undefined {
  const fd = openCacheFile(path, 'bootstrap', { write: false });
  if (fd === undefined) return undefined;
  try {
    return readWhole(fd);
  } finally {
    closeSync(fd);
  }
}
