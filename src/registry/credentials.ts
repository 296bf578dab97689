/**
 * Where registry credentials come from, first match wins:
 * 0. credentials the caller resolved already (`resolved`: the CLI's, handed to the daemon);
 * 1. `--creds USER:PASS`;
 * 2. env ONDEMAND_REGISTRY_USER / ONDEMAND_REGISTRY_PASSWORD;
 * 3. the Docker config ($DOCKER_CONFIG/config.json or ~/.docker/config.json): `credHelpers[host]`,
 *    then `auths[host]` (base64 `auth`, or `username`/`password`, or `identitytoken`), then `credsStore`.
 * Helpers speak the docker-credential-* protocol: `docker-credential-NAME get`, server URL on stdin,
 * JSON {ServerURL, Username, Secret} on stdout.
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { AuthError, UsageError, systemCode } from '../util/errors.js';
import { DOCKER_HUB } from './reference.js';

export type Credentials =
  | { kind: 'password'; username: string; password: string }
  /** An OAuth2 refresh token (Docker's `identitytoken`), exchanged at the token realm. */
  | { kind: 'identity-token'; username: string; identityToken: string };

export interface CredentialOptions {
  /**
   * Credentials resolved elsewhere (null: anonymous), e.g. by the CLI for the daemon: used as they
   * are, nothing is looked up in this process's environment or Docker config.
   */
  resolved?: Credentials | null;
  /** `USER:PASS` from the command line. */
  creds?: string;
  env?: NodeJS.ProcessEnv;
  /** Path of a Docker config.json; default $DOCKER_CONFIG/config.json or ~/.docker/config.json. */
  dockerConfig?: string;
}

const DOCKER_HUB_KEY = 'https://index.docker.io/v1/';
const HUB_ALIASES = new Set([DOCKER_HUB, 'index.docker.io', 'registry-1.docker.io']);

/** Parses `USER:PASS` (the password may contain colons). */
export function parseCreds(text: string): Credentials {
  const colon = text.indexOf(':');
  if (colon <= 0) throw new UsageError('--creds must be USER:PASSWORD');
  return { kind: 'password', username: text.slice(0, colon), password: text.slice(colon + 1) };
}

/** `https://host:port/v1/` or `host` → `host:port`, with Docker Hub's names folded to docker.io. */
export function normaliseRegistryKey(key: string): string {
  let host = key.replace(/^[a-z]+:\/\//i, '');
  const slash = host.indexOf('/');
  if (slash >= 0) host = host.slice(0, slash);
  host = host.toLowerCase();
  return HUB_ALIASES.has(host) ? DOCKER_HUB : host;
}

interface DockerConfig {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

function dockerConfigPath(options: CredentialOptions): string {
  if (options.dockerConfig !== undefined) return options.dockerConfig;
  const env = options.env ?? process.env;
  if (env.DOCKER_CONFIG) return join(env.DOCKER_CONFIG, 'config.json');
  return join(env.HOME ?? homedir(), '.docker', 'config.json');
}

async function readDockerConfig(path: string): Promise<DockerConfig | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (systemCode(err) === 'ENOENT') return undefined;
    throw new AuthError(`cannot read Docker config ${path}: ${systemCode(err) ?? 'error'}`, { path });
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed !== 'object' || parsed === null) throw new Error('not an object');
    return parsed as DockerConfig;
  } catch {
    throw new AuthError(`Docker config ${path} is not valid JSON`, { path });
  }
}

/** Runs `docker-credential-NAME get`. Undefined when the helper has nothing for this server. */
export async function runCredentialHelper(name: string, serverUrl: string, env: NodeJS.ProcessEnv = process.env): Promise<Credentials | undefined> {
  if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw new AuthError(`invalid credential helper name "${name}"`);
  const program = `docker-credential-${name}`;
  const { code, stdout, failed } = await new Promise<{ code: number | null; stdout: string; failed?: string }>((resolve) => {
    const child = spawn(program, ['get'], { stdio: ['pipe', 'pipe', 'pipe'], env });
    let out = '';
    let errText = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (errText += d));
    child.once('error', (err) => {
      clearTimeout(timer);
      resolve({ code: null, stdout: '', failed: systemCode(err) === 'ENOENT' ? `${program} not found on PATH` : `${program} could not run` });
    });
    child.once('close', (c) => {
      clearTimeout(timer);
      // Helpers say "credentials not found" on stdout or stderr; anything else stays private.
      resolve({ code: c, stdout: out, failed: c === 0 ? undefined : /not found/i.test(out + errText) ? 'not-found' : `${program} exited with status ${c}` });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(serverUrl);
  });
  if (failed === 'not-found') return undefined;
  if (failed !== undefined || code !== 0) throw new AuthError(`credential helper failed: ${failed ?? 'unknown error'}`, { registry: serverUrl });
  let parsed: { Username?: unknown; Secret?: unknown };
  try {
    parsed = JSON.parse(stdout) as { Username?: unknown; Secret?: unknown };
  } catch {
    throw new AuthError(`credential helper ${program} printed something that is not JSON`, { registry: serverUrl });
  }
  if (typeof parsed.Secret !== 'string' || parsed.Secret === '') return undefined;
  const username = typeof parsed.Username === 'string' ? parsed.Username : '';
  if (username === '<token>') return { kind: 'identity-token', username: '', identityToken: parsed.Secret };
  return { kind: 'password', username, password: parsed.Secret };
}

function fromAuthEntry(entry: NonNullable<DockerConfig['auths']>[string], path: string): Credentials | undefined {
  if (entry.identitytoken) return { kind: 'identity-token', username: entry.username ?? '', identityToken: entry.identitytoken };
  if (entry.auth) {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon <= 0) throw new AuthError(`Docker config ${path}: an "auth" entry is not base64 of USER:PASSWORD`, { path });
    return { kind: 'password', username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  if (entry.username && entry.password) return { kind: 'password', username: entry.username, password: entry.password };
  return undefined;
}

/** Credentials for `registry` (a host[:port] as in image references), or undefined for anonymous. */
export async function findCredentials(registry: string, options: CredentialOptions = {}): Promise<Credentials | undefined> {
  if (options.resolved !== undefined) return options.resolved ?? undefined;
  if (options.creds !== undefined) return parseCreds(options.creds);
  const env = options.env ?? process.env;
  const envUser = env.ONDEMAND_REGISTRY_USER;
  const envPassword = env.ONDEMAND_REGISTRY_PASSWORD;
  if (envUser !== undefined && envPassword !== undefined) return { kind: 'password', username: envUser, password: envPassword };

  const path = dockerConfigPath(options);
  const config = await readDockerConfig(path);
  if (config === undefined) return undefined;
  const wanted = normaliseRegistryKey(registry);
  const serverUrl = wanted === DOCKER_HUB ? DOCKER_HUB_KEY : wanted;

  for (const [key, helper] of Object.entries(config.credHelpers ?? {})) {
    if (normaliseRegistryKey(key) === wanted) return runCredentialHelper(helper, serverUrl, env);
  }
  for (const [key, entry] of Object.entries(config.auths ?? {})) {
    if (normaliseRegistryKey(key) !== wanted) continue;
    const found = fromAuthEntry(entry, path);
    if (found) return found;
  }
  if (config.credsStore) return runCredentialHelper(config.credsStore, serverUrl, env);
  return undefined;
}
