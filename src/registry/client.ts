/**
 * An OCI distribution client for one registry: requests with auth, retries, redirects and mirrors
 * (send), manifests, blobs (whole, streamed, ranges, multi-range). Uploads live in upload.ts.
 *
 * Plain HTTP is used with `insecure`, and always for loopback hosts (127.0.0.0/8, ::1, localhost):
 * a registry on the same machine is the test and development case and has no certificate.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { FetchError, FormatError, IntegrityError, OndemandError, UsageError, type ErrorContext } from '../util/errors.js';
import { logFor, type Logger } from '../util/log.js';
import { Authenticator, networkReason, repositoryScope } from './auth.js';
import { parseChallenges } from './challenge.js';
import { findCredentials, type CredentialOptions, type Credentials } from './credentials.js';
import { statusError } from './errors.js';
import { DEFAULT_TIMEOUTS, HttpTransport, discardBody, header, readBody, type HttpMethod, type HttpResponse, type HttpTimeouts, type RequestBody } from './http.js';
import { MANIFEST_ACCEPT, MAX_MANIFEST_BYTES, manifestMediaType, type FetchedManifest } from './manifest.js';
import { byterangesBoundary, parseByteranges, parseContentRange, type RangePart } from './multipart.js';
import { registryEndpoint } from './reference.js';
import { DEFAULT_RETRY, RetryBudget, isRetryableStatus, parseRetryAfter, type RetryPolicy } from './retry.js';

export interface RegistryClientOptions {
  /** The registry as in image references: `127.0.0.1:5000`, `docker.io`. */
  registry: string;
  /** Plain HTTP to every host (default: HTTPS except loopback). */
  insecure?: boolean;
  credentials?: CredentialOptions;
  /** Pull-through mirrors (`host[:port]` or `http(s)://host[:port]`), tried in order before the registry for reads. */
  mirrors?: string[];
  retry?: Partial<RetryPolicy>;
  timeouts?: Partial<HttpTimeouts>;
  /** Longest time one operation (a manifest, a range, a blob upload) may take, ms (default 10 min). */
  deadlineMs?: number;
  connectionsPerOrigin?: number;
  /** Blobs up to this size are pushed with one PUT, bigger ones in PATCH chunks (default 64 MiB). */
  monolithicUploadLimit?: number;
  /** PATCH chunk size for big blobs (default 16 MiB). */
  uploadChunkSize?: number;
  /** Ranges closer than this are fetched as one (default 0: only touching ranges merge). */
  rangeMergeGap?: number;
}

export interface OperationOptions {
  signal?: AbortSignal;
  /** Overrides the client's deadline for this operation. */
  deadlineMs?: number;
}

export interface ByteSpan {
  offset: number;
  length: number;
}

interface Endpoint {
  host: string;
  base: URL;
  mirror: boolean;
  auth: Authenticator;
  /** Mirrors that failed are skipped until then. */
  downUntil: number;
  /** Whether the endpoint answered a multi-range request with parts (undefined: not tried yet). */
  multiRange?: boolean;
}

export interface SendSpec {
  method: HttpMethod;
  /** `/v2/...` on the chosen endpoint, or an absolute URL (upload locations). */
  path: string | URL;
  headers?: Record<string, string>;
  body?: RequestBody;
  scopes: string[];
  budget: RetryBudget;
  /** Try mirrors first (reads only). */
  mirrors?: boolean;
  /** Retry network errors and 5xx/429 (default: GET, HEAD, PUT of manifests). */
  retry?: boolean;
  /** Use this endpoint (continuing an upload). */
  endpoint?: Endpoint;
}

export interface SendResult {
  res: HttpResponse;
  endpoint: Endpoint;
}

const MIRROR_DOWN_MS = 30_000;
const MAX_REDIRECTS = 5;
const MULTI_RANGE_BATCH = 32;

export function isLoopbackHost(host: string): boolean {
  const name = host.replace(/:[0-9]+$/, '').replace(/^\[|\]$/g, '');
  return name === 'localhost' || name === '::1' || /^127\.[0-9]+\.[0-9]+\.[0-9]+$/.test(name);
}

function baseUrl(hostOrUrl: string, insecure: boolean): URL {
  if (/^https?:\/\//i.test(hostOrUrl)) return new URL(hostOrUrl);
  const plain = insecure || isLoopbackHost(hostOrUrl);
  return new URL(`${plain ? 'http' : 'https'}://${hostOrUrl}`);
}

/** A URL for messages and logs: no query (upload state, signed storage URLs). */
export function safeUrl(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}`;
}

export class RegistryClient {
  readonly registry: string;
  readonly insecure: boolean;
  readonly policy: RetryPolicy;
  readonly deadlineMs: number;
  readonly monolithicUploadLimit: number;
  readonly uploadChunkSize: number;
  private readonly rangeMergeGap: number;
  private readonly transport: HttpTransport;
  private readonly origin: Endpoint;
  private readonly mirrors: Endpoint[];
  private readonly log: Logger;

  constructor(options: RegistryClientOptions) {
    this.registry = options.registry;
    this.insecure = options.insecure ?? false;
    this.policy = { ...DEFAULT_RETRY, ...options.retry };
    this.deadlineMs = options.deadlineMs ?? 10 * 60_000;
    this.monolithicUploadLimit = options.monolithicUploadLimit ?? 64 * 1024 * 1024;
    this.uploadChunkSize = options.uploadChunkSize ?? 16 * 1024 * 1024;
    this.rangeMergeGap = options.rangeMergeGap ?? 0;
    this.transport = new HttpTransport({ ...DEFAULT_TIMEOUTS, ...options.timeouts }, options.connectionsPerOrigin ?? 64);
    this.log = logFor({ registry: options.registry });
    const credentialOptions = options.credentials ?? {};
    const endpoint = (hostOrUrl: string, mirror: boolean): Endpoint => {
      const base = baseUrl(hostOrUrl, this.insecure);
      if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new UsageError(`registry address "${hostOrUrl}" is not HTTP(S)`);
      let creds: Promise<Credentials | undefined> | undefined;
      const lookup = (): Promise<Credentials | undefined> => (creds ??= findCredentials(mirror ? base.host : this.registry, mirror ? { ...credentialOptions, creds: undefined } : credentialOptions));
      const allowHttpRealm = this.insecure || base.protocol === 'http:';
      return { host: base.host, base, mirror, auth: new Authenticator(base.host, this.transport, lookup, allowHttpRealm), downUntil: 0 };
    };
    this.origin = endpoint(registryEndpoint(options.registry), false);
    this.mirrors = (options.mirrors ?? []).map((m) => endpoint(m, true));
  }

  /** Whether the registry answered multi-range requests with parts (undefined: not tried yet). */
  get multiRangeSupported(): boolean | undefined {
    return this.origin.multiRange;
  }

  /** A retry budget for one operation. */
  budget(what: string, context: ErrorContext, options: OperationOptions = {}): RetryBudget {
    return new RetryBudget(this.policy, options.deadlineMs ?? this.deadlineMs, what, { registry: this.registry, ...context }, options.signal);
  }

  /**
   * One request with everything around it: mirrors (reads), auth challenges, redirects (credentials
   * dropped when the host changes), retries of network errors, 5xx and 429. Returns any other answer
   * (2xx, 404...) with its body unread.
   */
  async send(spec: SendSpec): Promise<SendResult> {
    if (spec.endpoint !== undefined) return { res: await this.attempt(spec, spec.endpoint, spec.retry ?? true), endpoint: spec.endpoint };
    if (spec.mirrors === true && (spec.method === 'GET' || spec.method === 'HEAD')) {
      for (const m of this.mirrors) {
        if (Date.now() < m.downUntil) continue;
        try {
          const res = await this.attempt(spec, m, false);
          if (res.status < 400 || res.status === 416) return { res, endpoint: m };
          await discardBody(res);
          if (res.status >= 500) m.downUntil = Date.now() + MIRROR_DOWN_MS;
          this.log.debug({ mirror: m.host, status: res.status }, 'mirror cannot serve; next');
        } catch (err) {
          if (spec.budget.signal.aborted) throw spec.budget.abortError();
          if (!(err instanceof OndemandError) || err.code === 'EFETCH') m.downUntil = Date.now() + MIRROR_DOWN_MS;
          this.log.debug({ mirror: m.host, err: networkReason(err) }, 'mirror failed; next');
        }
      }
    }
    return { res: await this.attempt(spec, this.origin, spec.retry ?? true), endpoint: this.origin };
  }

  private async attempt(spec: SendSpec, ep: Endpoint, retry: boolean): Promise<HttpResponse> {
    const { budget } = spec;
    let authRound = 0;
    let authorization: string | undefined = await ep.auth.authorization(spec.scopes, budget);
    for (;;) {
      if (budget.signal.aborted) throw budget.abortError();
      let url = typeof spec.path === 'string' ? new URL(spec.path, ep.base) : spec.path;
      let redirects = 0;
      let res: HttpResponse;
      try {
        for (;;) {
          const headers: Record<string, string> = { 'user-agent': 'ondemand', ...spec.headers };
          const sameOrigin = url.origin === ep.base.origin;
          if (authorization !== undefined && sameOrigin) headers.authorization = authorization;
          const req = { method: spec.method, url, headers, signal: budget.signal, ...(spec.body !== undefined && redirects === 0 ? { body: spec.body } : {}) };
          res = await this.transport.request(req);
          this.log.debug({ method: spec.method, url: safeUrl(url), status: res.status }, 'registry request');
          const location = header(res, 'location');
          const isRedirect = [301, 302, 303, 307, 308].includes(res.status) && location !== undefined && (spec.method === 'GET' || spec.method === 'HEAD');
          if (!isRedirect) break;
          await discardBody(res);
          if (++redirects > MAX_REDIRECTS) throw new FetchError(`too many redirects from ${safeUrl(url)}`, { registry: this.registry });
          const next = new URL(location, url);
          if (next.protocol === 'http:' && url.protocol === 'https:' && !this.insecure) {
            throw new FetchError(`registry redirected from HTTPS to plain HTTP (${next.host}); refused without --insecure`, { registry: this.registry });
          }
          if (next.protocol !== 'http:' && next.protocol !== 'https:') throw new FetchError(`registry redirected to a non-HTTP URL`, { registry: this.registry });
          url = next;
        }
      } catch (err) {
        if (err instanceof OndemandError) throw err;
        if (budget.signal.aborted) throw budget.abortError();
        if (!retry) throw new FetchError(`${spec.method} ${safeUrl(url)}: ${networkReason(err)}`, { registry: this.registry }, { cause: err });
        await budget.failed(`${spec.method} ${safeUrl(url)}: ${networkReason(err)}`);
        continue;
      }
      if (res.status === 401 && redirects === 0) {
        const challenges = parseChallenges(header(res, 'www-authenticate'));
        await discardBody(res);
        authRound++;
        authorization = await ep.auth.unauthorized(challenges, spec.scopes, authRound, budget, authorization);
        continue;
      }
      if (retry && isRetryableStatus(res.status)) {
        await discardBody(res);
        await budget.failed(`${spec.method} ${safeUrl(url)}: HTTP ${res.status}`, parseRetryAfter(header(res, 'retry-after')));
        continue;
      }
      return res;
    }
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

  /**
   * The bytes of a blob from `offset` (for `length` bytes, or to the end), resuming from the last good
   * byte when a body breaks. Bytes are not verified here (a range cannot be); whole-blob readers do.
   */
  async *readBlob(repository: string, digest: string, span: { offset: number; length?: number }, budget: RetryBudget): AsyncGenerator<Buffer> {
    const context = { blob: digest, repository };
    const what = `blob ${digest} in ${this.registry}/${repository}`;
    let pos = span.offset;
    let end = span.length === undefined ? undefined : span.offset + span.length;
    if (end !== undefined && end <= pos) return;
    for (;;) {
      if (budget.signal.aborted) throw budget.abortError();
      const wantRange = pos > 0 || end !== undefined;
      const headers: Record<string, string> = {};
      if (wantRange) headers.range = `bytes=${pos}-${end === undefined ? '' : end - 1}`;
      const { res } = await this.send({ method: 'GET', path: `/v2/${repository}/blobs/${digest}`, headers, scopes: [repositoryScope(repository, 'pull')], budget, mirrors: true });
      let skip = 0;
      if (res.status === 206) {
        const cr = parseContentRange(header(res, 'content-range'));
        if (cr === undefined || cr.start !== pos) {
          await discardBody(res);
          await budget.failed(`${what}: answer to a range request covers the wrong bytes`);
          continue;
        }
        if (end === undefined && cr.total !== undefined) end = cr.total;
      } else if (res.status === 200) {
        skip = pos; // the server ignored Range: read from the start and drop what we have
        const len = header(res, 'content-length');
        if (end === undefined && len !== undefined) end = Number(len);
      } else if (res.status === 416) {
        await discardBody(res);
        throw new FetchError(`${what}: bytes ${pos}-${end === undefined ? '' : end - 1} are beyond the end of the blob`, { ...context, offset: pos });
      } else {
        throw await statusError(res, what, context);
      }
      try {
        for await (const raw of res.body as AsyncIterable<Buffer>) {
          let chunk = raw;
          if (skip > 0) {
            if (chunk.length <= skip) {
              skip -= chunk.length;
              continue;
            }
            chunk = chunk.subarray(skip);
            skip = 0;
          }
          if (end !== undefined && pos + chunk.length > end) chunk = chunk.subarray(0, end - pos);
          if (chunk.length === 0) continue;
          pos += chunk.length;
          yield chunk;
          if (end !== undefined && pos >= end) break;
        }
      } catch (err) {
        res.body.destroy();
        if (budget.signal.aborted) throw budget.abortError();
        this.log.debug({ blob: digest, at: pos, err: networkReason(err) }, 'blob body broke; resuming');
        await budget.failed(`${what}: body broke at byte ${pos}: ${networkReason(err)}`);
        continue;
      } finally {
        if (!res.body.destroyed) res.body.destroy();
      }
      if (end === undefined || pos >= end) return;
      await budget.failed(`${what}: body ended at byte ${pos} of ${end}`);
    }
  }

  /** Bytes [offset, offset+length) of a blob: exactly `length` bytes or a throw. */
  async getBlobRange(repository: string, digest: string, span: ByteSpan, options: OperationOptions = {}): Promise<Buffer> {
    const budget = this.budget(`reading ${span.length} bytes at ${span.offset} of blob ${digest}`, { blob: digest, offset: span.offset, length: span.length }, options);
    return this.collectRange(repository, digest, span, budget);
  }

  private async collectRange(repository: string, digest: string, span: ByteSpan, budget: RetryBudget): Promise<Buffer> {
    const out = Buffer.allocUnsafe(span.length);
    let filled = 0;
    for await (const chunk of this.readBlob(repository, digest, span, budget)) {
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
    if (groups.length > 1 && this.origin.multiRange !== false && this.mirrors.length === 0) {
      pending = [];
      for (let i = 0; i < groups.length; i += MULTI_RANGE_BATCH) {
        const batch = groups.slice(i, i + MULTI_RANGE_BATCH);
        const got = await this.tryMultiRange(repository, digest, batch, budget);
        for (const g of batch) {
          const b = got?.get(g);
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

  /** One multi-range GET; undefined (or missing groups) when the caller should fall back to single ranges. */
  private async tryMultiRange(repository: string, digest: string, groups: ByteSpan[], budget: RetryBudget): Promise<Map<ByteSpan, Buffer> | undefined> {
    const rangeHeader = 'bytes=' + groups.map((g) => `${g.offset}-${g.offset + g.length - 1}`).join(',');
    let res: HttpResponse;
    try {
      ({ res } = await this.send({ method: 'GET', path: `/v2/${repository}/blobs/${digest}`, headers: { range: rangeHeader }, scopes: [repositoryScope(repository, 'pull')], budget, retry: false }));
    } catch (err) {
      if (budget.signal.aborted) throw budget.abortError();
      if (err instanceof OndemandError && err.code !== 'EFETCH') throw err;
      return undefined; // network trouble: single ranges resume better
    }
    if (res.status === 200) {
      res.body.destroy(); // the server sends the whole blob: never again for this registry
      this.origin.multiRange = false;
      return undefined;
    }
    if (res.status === 404) throw await statusError(res, `blob ${digest} in ${this.registry}/${repository}`, { blob: digest });
    if (res.status !== 206) {
      await discardBody(res);
      return undefined;
    }
    const expected = groups.reduce((s, g) => s + g.length, 0);
    let parts: RangePart[];
    try {
      const body = await readBody(res, expected + groups.length * 512 + 4096);
      const boundary = byterangesBoundary(header(res, 'content-type'));
      if (boundary !== undefined) {
        parts = parseByteranges(body, boundary);
      } else {
        const cr = parseContentRange(header(res, 'content-range'));
        if (cr === undefined || cr.end - cr.start + 1 !== body.length) return undefined;
        parts = [{ start: cr.start, data: body }];
      }
    } catch {
      if (budget.signal.aborted) throw budget.abortError();
      return undefined;
    }
    this.origin.multiRange = true;
    const out = new Map<ByteSpan, Buffer>();
    for (const g of groups) {
      const part = parts.find((p) => g.offset >= p.start && g.offset + g.length <= p.start + p.data.length);
      if (part !== undefined) out.set(g, part.data.subarray(g.offset - part.start, g.offset - part.start + g.length));
    }
    return out;
  }

  /** A whole blob, verified against its digest (a mismatch is retried, then an IntegrityError). */
  async getBlob(repository: string, digest: string, options: OperationOptions & { maxBytes?: number } = {}): Promise<Buffer> {
    const budget = this.budget(`blob ${digest}`, { blob: digest, repository }, options);
    const limit = options.maxBytes ?? 512 * 1024 * 1024;
    for (;;) {
      const hash = createHash(digestAlgorithm(digest));
      const chunks: Buffer[] = [];
      let total = 0;
      for await (const chunk of this.readBlob(repository, digest, { offset: 0 }, budget)) {
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
    const source = this.readBlob(repository, digest, { offset: 0 }, budget);
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

  async close(): Promise<void> {
    await this.transport.close();
  }
}

export function digestAlgorithm(digest: string): 'sha256' | 'sha512' {
  if (digest.startsWith('sha256:')) return 'sha256';
  if (digest.startsWith('sha512:')) return 'sha512';
  throw new FormatError(`unsupported digest algorithm in "${digest}"`);
}

/** Sorted, merged spans covering every input span (gap: merge spans at most this far apart). */
export function mergeSpans(spans: ByteSpan[], gap: number): ByteSpan[] {
  const sorted = [...spans].filter((s) => s.length > 0).sort((a, b) => a.offset - b.offset);
  const out: ByteSpan[] = [];
  for (const s of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && s.offset <= last.offset + last.length + gap) {
      last.length = Math.max(last.length, s.offset + s.length - last.offset);
    } else {
      out.push({ offset: s.offset, length: s.length });
    }
  }
  // Zero-length spans still need a group to slice from.
  for (const s of spans) {
    if (s.length === 0 && !out.some((g) => s.offset >= g.offset && s.offset <= g.offset + g.length)) out.push({ offset: s.offset, length: 0 });
  }
  return out;
}

async function mapLimit<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const item = items[next++]!;
      await fn(item);
    }
  });
  await Promise.all(workers);
}
