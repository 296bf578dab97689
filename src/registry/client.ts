/**
 * An OCI distribution client for one registry: manifests and blobs (whole, streamed, ranges,
 * multi-range) over `send` (send.ts: auth, retries, redirects, mirrors). Uploads live in upload.ts.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { FetchError, IntegrityError, OndemandError } from '../util/errors.js';
import { networkReason, repositoryScope } from './auth.js';
import { digestAlgorithm, readBlob } from './blob-stream.js';
import { statusError } from './errors.js';
import { discardBody, header, readBody } from './http.js';
import { MANIFEST_ACCEPT, MAX_MANIFEST_BYTES, manifestMediaType, type FetchedManifest } from './manifest.js';
import { MULTI_RANGE_BATCH, mapLimit, mergeSpans, requestMultiRange, type ByteSpan } from './ranges.js';
import type { RetryBudget } from './retry.js';
import { RegistryConnection, type OperationOptions, type RegistryConnectionOptions } from './send.js';

export interface RegistryClientOptions extends RegistryConnectionOptions {
  /** Blobs up to this size are pushed with one PUT, bigger ones in PATCH chunks (default 64 MiB). */
  monolithicUploadLimit?: number;
  /** PATCH chunk size for big blobs (default 16 MiB). */
  uploadChunkSize?: number;
  /** Ranges closer than this are fetched as one (default 0: only touching ranges merge). */
  rangeMergeGap?: number;
}

export class RegistryClient extends RegistryConnection {
  readonly monolithicUploadLimit: number;
  readonly uploadChunkSize: number;
  private readonly rangeMergeGap: number;
  /** Whether the registry answered a multi-range request with parts (undefined: not tried yet). */
  private multiRange: boolean | undefined;

  constructor(options: RegistryClientOptions) {
    super(options);
    this.monolithicUploadLimit = options.monolithicUploadLimit ?? 64 * 1024 * 1024;
    this.uploadChunkSize = options.uploadChunkSize ?? 16 * 1024 * 1024;
    this.rangeMergeGap = options.rangeMergeGap ?? 0;
  }

  /** Whether the registry answered multi-range requests with parts (undefined: not tried yet). */
  get multiRangeSupported(): boolean | undefined {
    return this.multiRange;
  }

  // ---------------------------------------------------------------- manifests

  /** GET a manifest or index by tag or digest; checks the digest when asked by digest. */
  async getManifest(repository: string, reference: string, options: OperationOptions = {}): Promise<FetchedManifest> {
    const image = `${this.registry}/${repository}${reference.includes(':') ? '@' : ':'}${reference}`;
    const budget = this.budget(`manifest ${image}`, { image }, options);
    for (;;) {
      const { res } = await this.send({
        method: 'GET',
        path: `/v2/${repository}/manifests/${reference}`,
        headers: { accept: MANIFEST_ACCEPT },
        scopes: [repositoryScope(repository, 'pull')],
        budget,
        mirrors: true,
      });
      if (res.status !== 200) throw await statusError(res, `manifest ${image}`, { image });
      let bytes: Buffer;
      try {
        bytes = await readBody(res, MAX_MANIFEST_BYTES);
      } catch (err) {
        if (budget.signal.aborted) throw budget.abortError();
        if (err instanceof OndemandError) throw err; // too big: trying again will not help
        await budget.failed(`reading manifest ${image}: ${networkReason(err)}`);
        continue;
      }
      const digest = 'sha256:' + createHash('sha256').update(bytes).digest('hex');
      if (reference.startsWith('sha256:') && digest !== reference) {
        await budget.failed(`manifest ${image} has digest ${digest}`);
        continue;
      }
      const mediaType = manifestMediaType(bytes, header(res, 'content-type'), image);
      return { mediaType, digest, bytes };
    }
  }

  /** The manifest's digest, size and media type without its body, or undefined when absent. */
  async headManifest(repository: string, reference: string, options: OperationOptions = {}): Promise<{ digest?: string; size?: number; mediaType?: string } | undefined> {
    const image = `${this.registry}/${repository}:${reference}`;
    const budget = this.budget(`manifest ${image}`, { image }, options);
    const { res } = await this.send({ method: 'HEAD', path: `/v2/${repository}/manifests/${reference}`, headers: { accept: MANIFEST_ACCEPT }, scopes: [repositoryScope(repository, 'pull')], budget });
    if (res.status === 404) {
      await discardBody(res);
      return undefined;
    }
    if (res.status !== 200) throw await statusError(res, `manifest ${image}`, { image });
    await discardBody(res);
    const out: { digest?: string; size?: number; mediaType?: string } = {};
    const digest = header(res, 'docker-content-digest');
    if (digest) out.digest = digest;
    const len = header(res, 'content-length');
    if (len) out.size = Number(len);
    const ct = header(res, 'content-type');
    if (ct) out.mediaType = ct.split(';')[0]!.trim();
    return out;
  }

  /** PUT a manifest under a tag or its digest; returns its digest. */
  async putManifest(repository: string, reference: string, bytes: Buffer, mediaType: string, options: OperationOptions = {}): Promise<string> {
    const image = `${this.registry}/${repository}:${reference}`;
    const digest = 'sha256:' + createHash('sha256').update(bytes).digest('hex');
    const budget = this.budget(`pushing manifest ${image}`, { image }, options);
    const { res } = await this.send({
      method: 'PUT',
      path: `/v2/${repository}/manifests/${reference}`,
      headers: { 'content-type': mediaType },
      body: bytes,
      scopes: [repositoryScope(repository, 'push')],
      budget,
    });
    if (res.status !== 201 && res.status !== 200) throw await statusError(res, `pushing manifest ${image}`, { image });
    await discardBody(res);
    const returned = header(res, 'docker-content-digest');
    if (returned !== undefined && returned !== digest) {
      throw new IntegrityError(`registry stored manifest ${image} as ${returned}, expected ${digest}`, { image });
    }
    return digest;
  }

  // ---------------------------------------------------------------- blobs

  /** Size of a blob, or undefined when the repository does not have it (pushes ask the registry itself: useMirrors false). */
  async blobSize(repository: string, digest: string, options: OperationOptions & { useMirrors?: boolean } = {}): Promise<number | undefined> {
    const budget = this.budget(`blob ${digest}`, { blob: digest, repository }, options);
    const { res } = await this.send({
      method: 'HEAD',
      path: `/v2/${repository}/blobs/${digest}`,
      scopes: [repositoryScope(repository, 'pull')],
      budget,
      mirrors: options.useMirrors ?? true,
    });
    if (res.status === 404) {
      await discardBody(res);
      return undefined;
    }
    if (res.status !== 200) throw await statusError(res, `blob ${digest} in ${this.registry}/${repository}`, { blob: digest });
    await discardBody(res);
    const len = header(res, 'content-length');
    return len === undefined ? undefined : Number(len);
  }

  /** Bytes [offset, offset+length) of a blob: exactly `length` bytes or a throw. */
  async getBlobRange(repository: string, digest: string, span: ByteSpan, options: OperationOptions = {}): Promise<Buffer> {
    const budget = this.budget(`reading ${span.length} bytes at ${span.offset} of blob ${digest}`, { blob: digest, offset: span.offset, length: span.length }, options);
    return this.collectRange(repository, digest, span, budget);
  }

  private async collectRange(repository: string, digest: string, span: ByteSpan, budget: RetryBudget): Promise<Buffer> {
    const out = Buffer.allocUnsafe(span.length);
    let filled = 0;
    for await (const chunk of readBlob(this, repository, digest, span, budget)) {
      chunk.copy(out, filled);
      filled += chunk.length;
    }
    if (filled !== span.length) {
      throw new FetchError(`blob ${digest}: got ${filled} of ${span.length} bytes at offset ${span.offset}`, { blob: digest, offset: span.offset });
    }
    return out;
  }

  /**
   * Several ranges of one blob, in the order asked. Touching (or near, per rangeMergeGap) ranges are
   * fetched as one; separate ones go in one multi-range request when the server answers those with
   * parts, else as parallel single-range requests.
   */
  async getBlobRanges(repository: string, digest: string, spans: ByteSpan[], options: OperationOptions = {}): Promise<Buffer[]> {
    if (spans.length === 0) return [];
    const total = spans.reduce((s, r) => s + r.length, 0);
    const budget = this.budget(`reading ${spans.length} ranges (${total} bytes) of blob ${digest}`, { blob: digest }, options);
    const groups = mergeSpans(spans, this.rangeMergeGap);
    const groupBytes = new Map<ByteSpan, Buffer>();
    let pending = groups;
    if (groups.length > 1 && this.multiRange !== false && !this.hasMirrors) {
      pending = [];
      for (let i = 0; i < groups.length; i += MULTI_RANGE_BATCH) {
        const batch = groups.slice(i, i + MULTI_RANGE_BATCH);
        const got = await requestMultiRange(this, repository, digest, batch, budget);
        if (got === 'whole-blob') this.multiRange = false;
        else if (got !== undefined) this.multiRange = true;
        for (const g of batch) {
          const b = got === 'whole-blob' ? undefined : got?.parts.get(g);
          if (b !== undefined) groupBytes.set(g, b);
          else pending.push(g);
        }
      }
    }
    await mapLimit(pending, 8, async (g) => {
      groupBytes.set(g, await this.collectRange(repository, digest, g, budget));
    });
    return spans.map((s) => {
      const g = groups.find((x) => s.offset >= x.offset && s.offset + s.length <= x.offset + x.length)!;
      const bytes = groupBytes.get(g)!;
      return bytes.subarray(s.offset - g.offset, s.offset - g.offset + s.length);
    });
  }

  /** A whole blob, verified against its digest (a mismatch is retried, then an IntegrityError). */
  async getBlob(repository: string, digest: string, options: OperationOptions & { maxBytes?: number } = {}): Promise<Buffer> {
    const budget = this.budget(`blob ${digest}`, { blob: digest, repository }, options);
    const limit = options.maxBytes ?? 512 * 1024 * 1024;
    for (;;) {
      const hash = createHash(digestAlgorithm(digest));
      const chunks: Buffer[] = [];
      let total = 0;
      for await (const chunk of readBlob(this, repository, digest, { offset: 0 }, budget)) {
        total += chunk.length;
        if (total > limit) throw new FetchError(`blob ${digest} is larger than ${limit} bytes`, { blob: digest });
        hash.update(chunk);
        chunks.push(chunk);
      }
      const actual = `${digestAlgorithm(digest)}:${hash.digest('hex')}`;
      if (actual === digest) return Buffer.concat(chunks, total);
      if (budget.failureCount + 1 >= this.policy.attempts) {
        throw new IntegrityError(`blob ${digest} from ${this.registry}/${repository} has digest ${actual}`, { blob: digest });
      }
      await budget.failed(`blob ${digest} arrived with digest ${actual}`);
    }
  }

  /**
   * A whole blob as a stream (layers for convert), resumed across broken connections. The digest is
   * checked at the end: a mismatch ends the stream with an IntegrityError.
   */
  openBlobStream(repository: string, digest: string, options: OperationOptions = {}): Readable {
    const budget = this.budget(`blob ${digest}`, { blob: digest, repository }, options);
    const algorithm = digestAlgorithm(digest);
    const registry = this.registry;
    const source = readBlob(this, repository, digest, { offset: 0 }, budget);
    async function* verified(): AsyncGenerator<Buffer> {
      const hash = createHash(algorithm);
      for await (const chunk of source) {
        hash.update(chunk);
        yield chunk;
      }
      const actual = `${algorithm}:${hash.digest('hex')}`;
      if (actual !== digest) throw new IntegrityError(`blob ${digest} from ${registry}/${repository} has digest ${actual}`, { blob: digest });
    }
    return Readable.from(verified(), { objectMode: false });
  }
}
