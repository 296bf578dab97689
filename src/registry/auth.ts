/**
 * Authorization for one registry host: anonymous, Basic, or Bearer tokens obtained from the realm the
 * registry's 401 challenge names. Tokens are cached per scope set and renewed shortly before they
 * expire; a 401 on a cached token drops it and fetches a new one. Secrets never leave this module
 * except inside Authorization headers.
 */
import { AuthError, FetchError } from '../util/errors.js';
import { logFor } from '../util/log.js';
import type { Challenge } from './challenge.js';
import type { Credentials } from './credentials.js';
import { header, readBody, discardBody, type HttpTransport } from './http.js';
import { isRetryableStatus, parseRetryAfter, type RetryBudget } from './retry.js';

interface CachedToken {
  value: string;
  /** Local time (ms) after which we fetch a new one. */
  renewAt: number;
}

type Scheme = { kind: 'unknown' } | { kind: 'none' } | { kind: 'basic' } | { kind: 'bearer'; realm: string; service?: string };

/** The registry's pull and push scopes for a repository. */
export function repositoryScope(repository: string, actions: 'pull' | 'push'): string {
  return `repository:${repository}:${actions === 'push' ? 'pull,push' : 'pull'}`;
}

export class Authenticator {
  private scheme: Scheme = { kind: 'unknown' };
  private readonly tokens = new Map<string, Promise<CachedToken>>();
  private readonly log;

  constructor(
    readonly host: string,
    private readonly transport: HttpTransport,
    /** Looked up lazily: anonymous registries never read config files or run helpers. */
    private readonly credentials: () => Promise<Credentials | undefined>,
    private readonly allowInsecureRealm: boolean,
    /** The clock `renewAt` is compared with. */
    private readonly now: () => number = Date.now,
  ) {
    this.log = logFor({ registry: host });
  }

  /** The header to send for these scopes, if the registry's scheme is known (no extra round trip). */
  async authorization(scopes: string[], budget: RetryBudget): Promise<string | undefined> {
    switch (this.scheme.kind) {
      case 'unknown':
      case 'none':
        return undefined;
      case 'basic':
        return this.basicHeader();
      case 'bearer':
        return `Bearer ${(await this.token(scopes, budget)).value}`;
    }
  }

  /**
   * A 401 arrived. Learns the scheme from the challenge, forgets a rejected token, and returns the
   * header to try next. `round` counts 401s within one request: a second refusal of fresh
   * credentials is final.
   */
  async unauthorized(challenges: Challenge[], scopes: string[], round: number, budget: RetryBudget, rejected?: string): Promise<string> {
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    const basic = challenges.find((c) => c.scheme === 'basic');
    if (round > 3) throw await this.denied(scopes);
    if (bearer !== undefined) {
      const realm = bearer.params.realm;
      if (realm === undefined) throw new AuthError(`registry ${this.host} sent a Bearer challenge without a realm`);
      const scheme: Scheme = { kind: 'bearer', realm };
      if (bearer.params.service !== undefined) scheme.service = bearer.params.service;
      this.scheme = scheme;
      const rejectedToken = rejected?.startsWith('Bearer ') ? rejected.slice(7) : undefined;
      const key = this.tokenKey(scopes);
      const cached = this.tokens.get(key);
      if (cached !== undefined && rejectedToken !== undefined) {
        const current = await cached.catch(() => undefined);
        // Only the request holding the refused token drops it; concurrent ones share its replacement.
        if (current?.value === rejectedToken && this.tokens.get(key) === cached) {
          this.tokens.delete(key);
          // A token fetched for this very request was refused: the credentials lack access.
          if (round >= 2) throw await this.denied(scopes, bearer.params.error);
        }
      }
      return `Bearer ${(await this.token(scopes, budget)).value}`;
    }
    if (basic !== undefined) {
      const firstTime = this.scheme.kind !== 'basic';
      this.scheme = { kind: 'basic' };
      const h = await this.basicHeader();
      if (h === undefined) throw new AuthError(`registry ${this.host} requires a login (give --creds, ONDEMAND_REGISTRY_USER/PASSWORD or a Docker config)`);
      if (rejected === h || (!firstTime && round >= 2)) throw await this.denied(scopes);
      return h;
    }
    throw new AuthError(`registry ${this.host} refused access with an authentication scheme ondemand does not support`);
  }

  /** Forgets every token (e.g. the registry said a token expired). */
  reset(): void {
    this.tokens.clear();
  }

  private async denied(scopes: string[], reason?: string): Promise<AuthError> {
    const who = describeCredentials(await this.credentials());
    const why = reason === 'insufficient_scope' ? ' (insufficient scope)' : '';
    return new AuthError(`registry ${this.host} denied ${who} for ${scopes.join(' ')}${why}`);
  }

  private async basicHeader(): Promise<string | undefined> {
    const creds = await this.credentials();
    if (creds === undefined || creds.kind !== 'password') return undefined;
    return 'Basic ' + Buffer.from(`${creds.username}:${creds.password}`).toString('base64');
  }

  private tokenKey(scopes: string[]): string {
    return [...scopes].sort().join(' ');
  }

  private token(scopes: string[], budget: RetryBudget): Promise<CachedToken> {
    const key = this.tokenKey(scopes);
    const cached = this.tokens.get(key);
    if (cached !== undefined) {
      return cached.then(
        (t) => {
          if (this.now() < t.renewAt) return t;
          if (this.tokens.get(key) === cached) this.tokens.delete(key);
          return this.token(scopes, budget);
        },
        () => {
          if (this.tokens.get(key) === cached) this.tokens.delete(key);
          return this.token(scopes, budget);
        },
      );
    }
    const pending = this.fetchToken(scopes, budget);
    this.tokens.set(key, pending);
    pending.catch(() => {
      if (this.tokens.get(key) === pending) this.tokens.delete(key);
    });
    return pending;
  }

  private async fetchToken(scopes: string[], budget: RetryBudget): Promise<CachedToken> {
    if (this.scheme.kind !== 'bearer') throw new Error('fetchToken without a bearer scheme');
    const realm = new URL(this.scheme.realm);
    if (realm.protocol !== 'https:' && realm.protocol !== 'http:') throw new AuthError(`registry ${this.host} names a token realm that is not HTTP(S)`);
    if (realm.protocol === 'http:' && !this.allowInsecureRealm) {
      throw new AuthError(`registry ${this.host} names a plain-HTTP token realm ${realm.host}; use --insecure to allow it`);
    }
    const creds = await this.credentials();
    const headers: Record<string, string> = { accept: 'application/json' };
    let method: 'GET' | 'POST' = 'GET';
    let body: Buffer | undefined;
    const url = new URL(realm);
    if (creds?.kind === 'identity-token') {
      // OAuth2 refresh-token grant (docker login with an identity token).
      method = 'POST';
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.identityToken, client_id: 'ondemand', scope: scopes.join(' ') });
      if (this.scheme.service !== undefined) form.set('service', this.scheme.service);
      body = Buffer.from(form.toString());
      headers['content-type'] = 'application/x-www-form-urlencoded';
    } else {
      if (this.scheme.service !== undefined) url.searchParams.set('service', this.scheme.service);
      for (const s of scopes) url.searchParams.append('scope', s);
      if (creds !== undefined) {
        url.searchParams.set('account', creds.username);
        headers.authorization = 'Basic ' + Buffer.from(`${creds.username}:${creds.password}`).toString('base64');
      }
    }
    for (;;) {
      if (budget.signal.aborted) throw budget.abortError();
      let res;
      try {
        res = await this.transport.request({ method, url, headers, ...(body ? { body } : {}), signal: budget.signal });
      } catch (err) {
        if (budget.signal.aborted) throw budget.abortError();
        await budget.failed(`token server ${realm.host}: ${networkReason(err)}`);
        continue;
      }
      if (res.status === 401 || res.status === 403) {
        await discardBody(res);
        throw new AuthError(`token server for registry ${this.host} rejected ${describeCredentials(creds)}`);
      }
      if (isRetryableStatus(res.status)) {
        await discardBody(res);
        await budget.failed(`token server ${realm.host} answered ${res.status}`, parseRetryAfter(header(res, 'retry-after')));
        continue;
      }
      if (res.status !== 200) {
        await discardBody(res);
        throw new AuthError(`token server for registry ${this.host} answered HTTP ${res.status}`);
      }
      let parsed: { token?: unknown; access_token?: unknown; expires_in?: unknown; issued_at?: unknown };
      try {
        parsed = JSON.parse((await readBody(res, 1 << 20)).toString('utf8')) as typeof parsed;
      } catch (err) {
        if (budget.signal.aborted) throw budget.abortError();
        await budget.failed(`token server ${realm.host}: unreadable answer (${networkReason(err)})`);
        continue;
      }
      const value = typeof parsed.token === 'string' ? parsed.token : typeof parsed.access_token === 'string' ? parsed.access_token : undefined;
      if (value === undefined || value === '') throw new AuthError(`token server for registry ${this.host} returned no token`);
      const issued = this.now();
      const renewAt = renewTime(parsed.expires_in, parsed.issued_at, issued);
      this.log.debug({ scopes, renewInMs: renewAt - issued }, 'registry token issued');
      return { value, renewAt };
    }
  }
}

/** Who we tried to be, for messages (never the secret). */
function describeCredentials(creds: Credentials | undefined): string {
  if (creds === undefined) return 'anonymous access';
  if (creds.kind === 'identity-token') return creds.username ? `the identity token of user "${creds.username}"` : 'the identity token';
  return `the credentials of user "${creds.username}"`;
}

/** When to fetch a new token: before `expires_in` (default 60 s, per the token spec) runs out. */
export function renewTime(expiresIn: unknown, issuedAt: unknown, now = Date.now()): number {
  const seconds = typeof expiresIn === 'number' && expiresIn > 0 ? expiresIn : 60;
  let base = now;
  if (typeof issuedAt === 'string') {
    const t = Date.parse(issuedAt);
    // Trust the server's issue time only when the clocks roughly agree; it can only shorten the life.
    if (!Number.isNaN(t) && t <= now && now - t < 5 * 60_000) base = t;
  }
  const margin = Math.min(30_000, seconds * 1000 * 0.1);
  return base + seconds * 1000 - margin;
}

export function networkReason(err: unknown): string {
  if (err instanceof FetchError) return err.message;
  if (typeof err === 'object' && err !== null) {
    const code = 'code' in err && typeof err.code === 'string' ? err.code : undefined;
    const message = err instanceof Error ? err.message : JSON.stringify(err);
    return code !== undefined && !message.includes(code) ? `${message} (${code})` : message;
  }
  return String(err);
}
