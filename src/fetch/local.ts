/**
 * A BlobFetcher over local files: an OCI image layout directory (blobs/sha256/<hex>) or an explicit
 * digest → file map (plain bootstrap + blob files). Ranges are pread; whole blobs are verified.
 */
import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { FetchError, FormatError, IntegrityError, NotFoundError, systemCode } from '../util/errors.js';
import type { BlobFetcher, ByteRange, FetchOptions } from './types.js';

const DIGEST_RE = /^sha256:([0-9a-f]{64})$/;

export class LocalBlobFetcher implements BlobFetcher {
  private readonly handles = new Map<string, Promise<{ fh: FileHandle; size: number }>>();

  private constructor(readonly source: string, private readonly locate: (digest: string) => string | undefined) {}

  /** Blobs of an OCI image layout directory. */
  static forOciLayout(dir: string): LocalBlobFetcher {
    return new LocalBlobFetcher(`oci:${dir}`, (digest) => {
      const m = DIGEST_RE.exec(digest);
      return m ? join(dir, 'blobs', 'sha256', m[1]!) : undefined;
    });
  }

  /** Blobs named explicitly: digest → path. */
  static forFiles(files: Map<string, string>, source = 'local files'): LocalBlobFetcher {
    return new LocalBlobFetcher(source, (digest) => files.get(digest));
  }

  private handle(digest: string): Promise<{ fh: FileHandle; size: number }> {
    let h = this.handles.get(digest);
    if (!h) {
      const path = this.locate(digest);
      if (path === undefined) {
        if (!DIGEST_RE.test(digest)) throw new FormatError(`not a sha256 digest: ${digest}`, { image: this.source });
        throw new NotFoundError(`blob ${digest} not found`, { image: this.source, blob: digest });
      }
      h = (async () => {
        try {
          const fh = await open(path, 'r');
          return { fh, size: (await fh.stat()).size };
        } catch (err) {
          if (systemCode(err) === 'ENOENT') throw new NotFoundError(`blob ${digest} not found`, { image: this.source, blob: digest, path });
          throw new FetchError(`cannot open blob: ${(err as Error).message}`, { image: this.source, blob: digest, path }, { cause: err });
        }
      })();
      h.catch(() => this.handles.delete(digest));
      this.handles.set(digest, h);
    }
    return h;
  }

  async fetchRange(digest: string, range: ByteRange, options: FetchOptions = {}): Promise<Buffer> {
    options.signal?.throwIfAborted();
    const { fh, size } = await this.handle(digest);
    const ctx = { image: this.source, blob: digest, offset: range.offset, length: range.length };
    if (!Number.isSafeInteger(range.offset) || !Number.isSafeInteger(range.length) || range.offset < 0 || range.length < 0 || range.offset + range.length > size) {
      throw new FetchError(`range [${range.offset}, +${range.length}) lies outside the ${size}-byte blob`, ctx);
    }
    const buf = Buffer.allocUnsafe(range.length);
    let got = 0;
    while (got < range.length) {
      const { bytesRead } = await fh.read(buf, got, range.length - got, range.offset + got);
      if (bytesRead === 0) throw new FetchError('blob file shrank while reading', ctx);
      got += bytesRead;
    }
    return buf;
  }

  async fetchBlob(digest: string, options: FetchOptions = {}): Promise<Buffer> {
    const { size } = await this.handle(digest);
    const bytes = await this.fetchRange(digest, { offset: 0, length: size }, options);
    const actual = 'sha256:' + createHash('sha256').update(bytes).digest('hex');
    if (actual !== digest) throw new IntegrityError(`blob digest mismatch: expected ${digest}, got ${actual}`, { image: this.source, blob: digest });
    return bytes;
  }

  /** Size of a stored blob (no read). */
  async blobSize(digest: string): Promise<number> {
    return (await this.handle(digest)).size;
  }

  async close(): Promise<void> {
    const all = [...this.handles.values()];
    this.handles.clear();
    for (const h of all) await h.then((x) => x.fh.close()).catch(() => undefined);
  }
}
