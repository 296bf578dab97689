/**
 * Every configuration key: its section and name in the file, its kind, its default, and the
 * environment variable and flags that set it too. This table is the schema: the file is checked
 * against it (unknown sections and keys are errors), `config show` lists it, docs/config.md documents it.
 */
import { DEFAULT_FETCH_DEADLINE_MS } from '../mount/types.js';
import { DEFAULT_RETRY } from '../registry/retry.js';
import { defaultCacheDir } from '../util/user-dirs.js';
import {
  addressKind, boolKind, choiceKind, countKind, hostListKind, optional, pathKind, secondsKind, sizeKind, type ValueKind,
} from './values.js';

/** /var/cache/ondemand for root, the user's cache dir otherwise (util/user-dirs.ts). */
export const DEFAULT_CACHE_DIR = defaultCacheDir();
export const DEFAULT_CONFIG_PATH = '/etc/ondemand/config.toml';

/**
 * Most frames a sequential reader keeps in flight ahead of it (the read-ahead starts at 1 frame and
 * doubles up to this: cache/fetch-plan.ts). A cold sequential read through fanotify measured 585,
 * 580, 608 and 610 MiB/s with 2, 4, 8 and 16 (medians of 8 runs). Starting programs has few
 * sequential misses, and short ones get a short read-ahead: on the Debian minbase image
 * `chroot /bin/true` fetched 3.0 MB with 2 or 8 and 2.5 MB with 0.
 */
export const DAEMON_READ_AHEAD_FRAMES = 8;

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface KeySpec<T> {
  kind: ValueKind<T>;
  default: T;
  /** The environment variable that sets it (flags > environment > file > defaults). */
  env?: string;
  /** What the key is for (config show --json, docs). */
  help: string;
}

function spec<T>(kind: ValueKind<T>, dflt: T, help: string, env?: string): KeySpec<T> {
  return { kind, default: dflt, help, ...(env !== undefined ? { env } : {}) };
}

/** Keys as `section.name`, the way they are written in the file and named in messages. */
export const KEYS = {
  'cache.dir': spec(pathKind, DEFAULT_CACHE_DIR, 'Cache directory (blobs, bootstraps, image metadata)', 'ONDEMAND_CACHE_DIR'),
  'cache.max_size': spec(optional(sizeKind, '(no limit)'), null, 'The daemon evicts least recently used blobs to stay under this; `cache gc` trims to it', 'ONDEMAND_CACHE_MAX_SIZE'),
  'cache.read_ahead_frames': spec(countKind, DAEMON_READ_AHEAD_FRAMES, 'Most frames a sequential reader keeps in flight ahead of it (0: none)', 'ONDEMAND_CACHE_READ_AHEAD_FRAMES'),
  'fetch.timeout': spec(secondsKind, DEFAULT_FETCH_DEADLINE_MS / 1000, 'Longest one fetch of image data may take before the read waiting on it fails (EIO)', 'ONDEMAND_FETCH_TIMEOUT'),
  'registry.retries': spec(countKind, DEFAULT_RETRY.attempts - 1, 'Tries after the first for a registry request that failed on the network, a timeout or 5xx/429', 'ONDEMAND_REGISTRY_RETRIES'),
  'registry.mirrors': spec(hostListKind, [] as string[], 'Pull-through mirrors tried in order before the registry, for reads', 'ONDEMAND_REGISTRY_MIRRORS'),
  'registry.docker_config': spec(optional(pathKind, '(Docker\'s default)'), null,
    'Docker config.json whose auths, credHelpers and credsStore give registry credentials', 'ONDEMAND_DOCKER_CONFIG'),
  'registry.creds_file': spec(optional(pathKind, '(none)'), null,
    'File holding USER:PASS used for every registry, like --creds-file (after $ONDEMAND_REGISTRY_USER/PASSWORD, before the Docker config)', 'ONDEMAND_REGISTRY_CREDS_FILE'),
  'prefetch.enabled': spec(boolKind, false, 'Whether `mount` fetches every blob in the background (its --prefetch / --no-prefetch)', 'ONDEMAND_PREFETCH'),
  'prefetch.rate': spec(sizeKind, 0, 'Bandwidth cap of background prefetch in bytes per second, e.g. 50M (0: no cap)', 'ONDEMAND_PREFETCH_RATE'),
  'prefetch.trace_seconds': spec(countKind, 10, 'Seconds of first reads a cold mount records as the image\'s start-up trace, fetched first by later mounts (0: never record)', 'ONDEMAND_PREFETCH_TRACE_SECONDS'),
  'log.level': spec(choiceKind(LOG_LEVELS), 'warn' as LogLevel, 'Log level (the daemon logs at info unless this is set)', 'ONDEMAND_LOG_LEVEL'),
  'log.file': spec(optional(pathKind, '(stderr)'), null, 'Log to this file (appended) instead of stderr', 'ONDEMAND_LOG_FILE'),
  'metrics.address': spec(optional(addressKind, '(off)'), null, 'Where the daemon serves Prometheus metrics (GET /metrics; unset: off)', 'ONDEMAND_METRICS_ADDRESS'),
} as const;

export type KeyName = keyof typeof KEYS;
/** The type of a key's value. */
export type ValueOf<K extends KeyName> = (typeof KEYS)[K] extends KeySpec<infer T> ? T : never;
export const KEY_NAMES = Object.keys(KEYS) as KeyName[];

/** The sections of the file and the keys each takes. */
export function sections(): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const k of KEY_NAMES) {
    const [section, name] = k.split('.') as [string, string];
    out.set(section, [...(out.get(section) ?? []), name]);
  }
  return out;
}
