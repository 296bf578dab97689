/**
 * One registry request with everything around it: the registry and its pull-through mirrors (reads),
 * auth challenges, redirects, and retries within an operation's budget. Manifests, blobs and uploads
 * are built on `send` (client.ts, upload.ts).
 *
 * Plain HTTP is used with `insecure`, and always for loopback hosts (127.0.0.0/8, ::1, localhost):
 * a registry on the same machine is the test and development case and has no certificate.
 */
import { FetchError, OndemandError, UsageError, type ErrorContext } from '../util/errors.js';
import { logFor, type Logger } from '../util/log.js';
import { Authenticator, networkReason } from './auth.js';
import { parseChallenges } from './challenge.js';
import { findCredentials, type CredentialOptions, type Credentials } from './credentials.js';
import { DEFAULT_TIMEOUTS, HttpTransport, discardBody, header, type HttpMethod, type HttpResponse, type HttpTimeouts, type RequestBody } from './http.js';
import { registryEndpoint } from './reference.js';
import { DEFAULT_RETRY, RetryBudget, isRetryableStatus, parseRetryAfter, type RetryPolicy } from './retry.js';

export interface RegistryConnectionOptions {
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
  /** The clock token lifetimes are measured by, ms (default Date.now): tests move it instead of waiting. */
  now?: () => number;
}

export interface OperationOptions {
  signal?: AbortSignal;
  /** Overrides the client's deadline for this operation. */
  deadlineMs?: number;
}

interface Endpoint {
  host: string;
  base: URL;
  mirror: boolean;
  auth: Authenticator;
  /** Mirrors that failed are skipped until then. */
  downUntil: number;
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

export class RegistryConnection {
  readonly registry: string;
  readonly insecure: boolean;
  readonly policy: RetryPolicy;
  readonly deadlineMs: number;
  readonly log: Logger;
  private readonly transport: HttpTransport;
  private readonly origin: Endpoint;
  private readonly mirrors: Endpoint[];

  constructor(options: RegistryConnectionOptions) {
    this.registry = options.registry;
    this.insecure = options.insecure ?? false;
    this.policy = { ...DEFAULT_RETRY, ...options.retry };
    this.deadlineMs = options.deadlineMs ?? 10 * 60_000;
    this.transport = new HttpTransport({ ...DEFAULT_TIMEOUTS, ...options.timeouts }, options.connectionsPerOrigin ?? 64);
    this.log = logFor({ registry: options.registry });
    const credentialOptions = options.credentials ?? {};
    const now = options.now ?? Date.now;
    const endpoint = (hostOrUrl: string, mirror: boolean): Endpoint => {
      const base = baseUrl(hostOrUrl, this.insecure);
      if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new UsageError(`registry address "${hostOrUrl}" is not HTTP(S)`);
      let creds: Promise<Credentials | undefined> | undefined;
      const lookup = (): Promise<Credentials | undefined> => (creds ??= findCredentials(mirror ? base.host : this.registry, mirror ? { ...credentialOptions, creds: undefined, resolved: undefined } : credentialOptions));
      const allowHttpRealm = this.insecure || base.protocol === 'http:';
      return { host: base.host, base, mirror, auth: new Authenticator(base.host, this.transport, lookup, allowHttpRealm, now), downUntil: 0 };
    };
    this.origin = endpoint(registryEndpoint(options.registry), false);
    this.mirrors = (options.mirrors ?? []).map((m) => endpoint(m, true));
  }

  /** Whether pull-through mirrors take reads before the registry. */
  get hasMirrors(): boolean {
    return this.mirrors.length > 0;
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

  async close(): Promise<void> {
    await this.transport.close();
  }
}
