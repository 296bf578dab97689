/**
 * A real Debian `docker-registry` (distribution 2.8) on 127.0.0.1 for tests, in one of three set-ups:
 * - `none`: anonymous push and pull;
 * - `basic`: htpasswd (bcrypt) Basic auth;
 * - `token`: Bearer tokens from a token server this process runs (node:http on loopback), signed
 *   RS256 with a key whose self-signed certificate the registry trusts (JWT header `x5c`). GET with
 *   Basic credentials, or POST with an OAuth2 refresh-token grant whose token is the password.
 *
 * Each registry has its own YAML config and storage under /var/tmp; stop() kills it and removes the dir,
 * down() and up() stop and start its process on the same port and storage.
 * Registries still running when the test process exits are killed on exit.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createHash, createSign, randomBytes, X509Certificate } from 'node:crypto';
import { closeSync, openSync, readFileSync, writeFileSync, rmSync, mkdtempSync, mkdirSync } from 'node:fs';
import { createServer as createHttpServer, type Server, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { join } from 'node:path';

export type RegistryAuth = 'none' | 'basic' | 'token';

export interface TokenServerOptions {
  /** Lifetime of the JWT as the registry enforces it, in seconds (default 300). */
  lifetimeSeconds?: number;
  /** `expires_in` told to the client (default = lifetimeSeconds). Larger than the lifetime → the client sees 401s. */
  advertisedExpiresIn?: number;
  /** Grant pull to clients without credentials (default false: anonymous tokens carry no access). */
  anonymousPull?: boolean;
}

export interface StartRegistryOptions {
  auth?: RegistryAuth;
  /** Fixed port; default a free one. */
  port?: number;
  token?: TokenServerOptions;
}

export interface TokenServerInfo {
  url: string;
  service: string;
  issuer: string;
  /** Tokens issued so far (to test caching and refresh). */
  issued(): number;
  /** Requests refused for bad credentials. */
  refused(): number;
}

export interface TestRegistry {
  /** `127.0.0.1:PORT` — the registry part of an image reference. */
  host: string;
  /** `http://127.0.0.1:PORT`. */
  url: string;
  auth: RegistryAuth;
  user?: string;
  password?: string;
  /** Storage and config directory. */
  dir: string;
  /** The registry's own log file (for debugging failed tests). */
  logFile: string;
  token?: TokenServerInfo;
  stop(): Promise<void>;
  /** Sends the registry process a signal (SIGSTOP: it hangs, connections accepted and never answered; SIGCONT). */
  signal(sig: NodeJS.Signals): void;
  /** Stops the registry process (SIGTERM, then SIGKILL) but keeps its storage and config: clients get ECONNREFUSED. */
  down(): Promise<void>;
  /** Starts the registry again on the same port and storage after down(), and waits until it answers. */
  up(): Promise<void>;
  /** down() then up(). */
  restart(): Promise<void>;
}

const REGISTRY_BIN = process.env.ONDEMAND_REGISTRY_BIN ?? '/usr/bin/docker-registry';
/** Registries not yet stopped, with their directories: killed and removed when the process exits. */
const running = new Map<ChildProcess, string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  const killAll = (): void => {
    for (const [child, dir] of running) {
      try {
        child.kill('SIGKILL');
      } catch {
        /* already gone */
      }
      rmSync(dir, { recursive: true, force: true });
    }
  };
  process.on('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      killAll();
      process.exit(130);
    });
  }
}

/** Starts `server` on an ephemeral 127.0.0.1 port and returns the port. */
export async function listenOnLoopback(server: Server): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const addr = server.address();
  return typeof addr === 'object' && addr !== null ? addr.port : 0;
}

/** A free loopback TCP port (bound, read, released). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createNetServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function b64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

interface Access {
  type: string;
  name: string;
  actions: string[];
}

function parseScope(scope: string): Access | undefined {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first < 0 || last <= first) return undefined;
  return { type: scope.slice(0, first), name: scope.slice(first + 1, last), actions: scope.slice(last + 1).split(',').filter(Boolean) };
}

interface TokenServer {
  info: TokenServerInfo;
  server: Server;
}

async function startTokenServer(dir: string, user: string, password: string, opts: TokenServerOptions): Promise<{ ts: TokenServer; certFile: string }> {
  const keyFile = join(dir, 'token-key.pem');
  const certFile = join(dir, 'token-cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', '/CN=ondemand-test-token-issuer'], {
    stdio: 'ignore',
  });
  const keyPem = readFileSync(keyFile, 'utf8');
  const certDer = new X509Certificate(readFileSync(certFile)).raw;
  const service = 'ondemand-test-registry';
  const issuer = 'ondemand-test-issuer';
  const lifetime = opts.lifetimeSeconds ?? 300;
  const advertised = opts.advertisedExpiresIn ?? lifetime;
  let issued = 0;
  let refused = 0;

  const sign = (claims: object): string => {
    const header = { alg: 'RS256', typ: 'JWT', x5c: [certDer.toString('base64')] };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const sig = createSign('RSA-SHA256').update(input).sign(keyPem);
    return `${input}.${b64url(sig)}`;
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    if (req.method === 'POST') {
      // OAuth2 refresh-token grant (a Docker `identitytoken`): the form carries the scope; the
      // refresh token accepted is the user's password.
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (d: string) => (body += d));
      req.on('end', () => {
        const form = new URLSearchParams(body);
        const url = new URL(req.url ?? '/', 'http://127.0.0.1');
        for (const s of (form.get('scope') ?? '').split(' ').filter(Boolean)) url.searchParams.append('scope', s);
        const ok = form.get('grant_type') === 'refresh_token' && form.get('refresh_token') === password;
        issue(url, ok ? 'yes' : 'refused', res);
      });
      return;
    }
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    let auth: 'yes' | 'no' | 'refused' = 'no';
    const header = req.headers.authorization;
    if (header !== undefined) {
      const m = /^Basic\s+(.+)$/i.exec(header);
      const decoded = m ? Buffer.from(m[1]!, 'base64').toString('utf8') : '';
      auth = decoded === `${user}:${password}` ? 'yes' : 'refused';
    }
    issue(url, auth, res);
  };

  const issue = (url: URL, auth: 'yes' | 'no' | 'refused', res: ServerResponse): void => {
    if (url.pathname !== '/token') {
      res.writeHead(404).end();
      return;
    }
    const authenticated = auth === 'yes';
    if (auth === 'refused') {
      refused++;
      res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Basic realm="ondemand-test-token"' });
      res.end(JSON.stringify({ details: 'incorrect username or password' }));
      return;
    }
    const access: Access[] = [];
    for (const scope of url.searchParams.getAll('scope')) {
      for (const part of scope.split(' ')) {
        const a = parseScope(part);
        if (a === undefined) continue;
        const allowed = authenticated ? a.actions.filter((x) => ['pull', 'push', '*'].includes(x)) : opts.anonymousPull ? a.actions.filter((x) => x === 'pull') : [];
        access.push({ ...a, actions: allowed });
      }
    }
    const now = Math.floor(Date.now() / 1000);
    // distribution allows 60 s of clock skew past `exp`: shift exp back so the real lifetime is `lifetime`.
    const claims = {
      iss: issuer,
      sub: authenticated ? user : '',
      aud: service,
      exp: now + lifetime - 60,
      nbf: now - 1,
      iat: now,
      jti: randomBytes(12).toString('hex'),
      access,
    };
    const token = sign(claims);
    issued++;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ token, access_token: token, expires_in: advertised, issued_at: new Date(now * 1000).toISOString() }));
  };

  const server = createHttpServer(handle);
  const port = await listenOnLoopback(server);
  return {
    certFile,
    ts: {
      server,
      info: { url: `http://127.0.0.1:${port}/token`, service, issuer, issued: () => issued, refused: () => refused },
    },
  };
}

async function waitForRegistry(url: string, child: ChildProcess, logFile: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  child.once('exit', () => (exited = true));
  while (Date.now() < deadline) {
    if (exited) throw new Error(`docker-registry exited during start-up; log:\n${readFileSync(logFile, 'utf8').slice(-2000)}`);
    try {
      const res = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.status === 200 || res.status === 401) return;
    } catch {
      /* not listening yet */
    }
    await new Promise((r) => setTimeout(r, 30));
  }
  throw new Error(`docker-registry did not answer /v2/ within ${timeoutMs} ms; log:\n${readFileSync(logFile, 'utf8').slice(-2000)}`);
}

function yamlString(s: string): string {
  return JSON.stringify(s);
}

/** Starts a registry; retries on another port if the chosen one was taken meanwhile. */
export async function startRegistry(options: StartRegistryOptions = {}): Promise<TestRegistry> {
  let lastErr: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startOnce(options);
    } catch (err) {
      lastErr = err;
      if (options.port !== undefined) break;
    }
  }
  throw lastErr instanceof Error ? lastErr : new Error(String(lastErr));
}

async function startOnce(options: StartRegistryOptions): Promise<TestRegistry> {
  installExitHook();
  const auth = options.auth ?? 'none';
  const dir = mkdtempSync(join(process.env.ONDEMAND_TEST_TMP ?? '/var/tmp', `ondemand-registry-${auth}-`));
  const dataDir = join(dir, 'data');
  mkdirSync(dataDir);
  const logFile = join(dir, 'registry.log');
  const port = options.port ?? (await freePort());
  const user = auth === 'none' ? undefined : 'tester';
  const password = auth === 'none' ? undefined : `pw-${randomBytes(9).toString('base64url')}`;
  let tokenServer: TokenServer | undefined;

  let authYaml = '';
  try {
    if (auth === 'basic') {
      const htpasswd = execFileSync('htpasswd', ['-Bbn', user!, password!], { encoding: 'utf8' });
      writeFileSync(join(dir, 'htpasswd'), htpasswd);
      authYaml = `auth:\n  htpasswd:\n    realm: ondemand-test\n    path: ${yamlString(join(dir, 'htpasswd'))}\n`;
    } else if (auth === 'token') {
      const { ts, certFile } = await startTokenServer(dir, user!, password!, options.token ?? {});
      tokenServer = ts;
      authYaml =
        `auth:\n  token:\n    realm: ${yamlString(ts.info.url)}\n    service: ${yamlString(ts.info.service)}\n` +
        `    issuer: ${yamlString(ts.info.issuer)}\n    rootcertbundle: ${yamlString(certFile)}\n`;
    }
    const config =
      `version: 0.1\n` +
      `log:\n  level: info\n  formatter: text\n` +
      `storage:\n  filesystem:\n    rootdirectory: ${yamlString(dataDir)}\n  delete:\n    enabled: true\n` +
      `http:\n  addr: 127.0.0.1:${port}\n  secret: ${yamlString(createHash('sha256').update(dir).digest('hex'))}\n` +
      authYaml;
    const configFile = join(dir, 'config.yml');
    writeFileSync(configFile, config);
    writeFileSync(logFile, '');
    const url = `http://127.0.0.1:${port}`;
    let child: ChildProcess | null = null;
    /** Starts the registry process on `port` with the config and storage above; waits until it answers. */
    const launch = async (): Promise<void> => {
      const logFd = openSync(logFile, 'a');
      const started = spawn(REGISTRY_BIN, ['serve', configFile], { stdio: ['ignore', logFd, logFd], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
      closeSync(logFd);
      running.set(started, dir);
      try {
        await waitForRegistry(url, started, logFile, 15_000);
      } catch (err) {
        started.kill('SIGKILL');
        running.delete(started);
        throw err;
      }
      child = started;
    };
    /** Ends the registry process (a stopped one gets SIGCONT so that SIGTERM can work) and waits for it. */
    const halt = async (): Promise<void> => {
      const current = child;
      child = null;
      if (current === null) return;
      if (current.exitCode === null && current.signalCode === null) {
        const gone = new Promise<void>((r) => current.once('exit', () => r()));
        current.kill('SIGTERM');
        current.kill('SIGCONT');
        const timer = setTimeout(() => current.kill('SIGKILL'), 3000);
        await gone;
        clearTimeout(timer);
      }
      running.delete(current);
    };
    await launch();

    let stopped = false;
    const stop = async (): Promise<void> => {
      if (stopped) return;
      stopped = true;
      await halt();
      if (tokenServer) {
        tokenServer.server.closeAllConnections();
        await new Promise<void>((r) => tokenServer!.server.close(() => r()));
      }
      rmSync(dir, { recursive: true, force: true });
    };
    const up = async (): Promise<void> => {
      if (stopped) throw new Error('registry was stopped for good (stop()); up() works after down()');
      if (child === null) await launch();
    };
    const result: TestRegistry = {
      host: `127.0.0.1:${port}`, url, auth, dir, logFile, stop, up, down: halt,
      signal: (sig) => { child?.kill(sig); },
      restart: async () => { await halt(); await up(); },
    };
    if (user !== undefined) result.user = user;
    if (password !== undefined) result.password = password;
    if (tokenServer) result.token = tokenServer.info;
    return result;
  } catch (err) {
    if (tokenServer) {
      tokenServer.server.closeAllConnections();
      tokenServer.server.close();
    }
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
