/**
 * The configuration: the TOML file checked against the key table, precedence (flags > environment >
 * file > defaults) with each value's source, the one-line errors, and the JSON hand-over to the daemon.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_CACHE_DIR as CACHE_DEFAULT } from '../../src/cache/dir.js';
import { DAEMON_READ_AHEAD_FRAMES, DEFAULT_CACHE_DIR, DEFAULT_CONFIG_PATH, KEY_NAMES } from '../../src/config/keys.js';
import {
  configFromJson, configToJson, describeSource, parseConfigText, resolveConfig, setting, type ResolvedConfig,
} from '../../src/config/resolve.js';
import { cacheOptions, cacheOptionsFrom } from '../../src/daemon/worker.js';
import { DEFAULT_RETRY } from '../../src/registry/retry.js';
import { ConfigError, UsageError } from '../../src/util/errors.js';
import { makeTempDir } from '../helpers/env.js';

const FULL = `
# every key
[cache]
dir = "/srv/ondemand/cache"
max_size = "20G"
read_ahead_frames = 4

[fetch]
timeout = "45s"

[registry]
retries = 2
mirrors = ["mirror.local:5000", "https://m2.example"]
docker_config = "/etc/ondemand/docker.json"
creds_file = "/etc/ondemand/creds"

[prefetch]
enabled = true
rate = "50M"
trace_seconds = 20

[log]
level = "debug"
file = "/var/log/ondemand.log"

[metrics]
address = "127.0.0.1:9100"
`;

function errorOf(f: () => unknown): Error {
  try {
    f();
  } catch (err) {
    return err as Error;
  }
  throw new Error('no error');
}

describe('the file', () => {
  it('reads every key, typed', () => {
    const v = parseConfigText(FULL, '/c.toml');
    expect(Object.fromEntries(v)).toEqual({
      'cache.dir': '/srv/ondemand/cache',
      'cache.max_size': 20 * 1024 ** 3,
      'cache.read_ahead_frames': 4,
      'fetch.timeout': 45,
      'registry.retries': 2,
      'registry.mirrors': ['mirror.local:5000', 'https://m2.example'],
      'registry.docker_config': '/etc/ondemand/docker.json',
      'registry.creds_file': '/etc/ondemand/creds',
      'prefetch.enabled': true,
      'prefetch.rate': 50 * 1024 ** 2,
      'prefetch.trace_seconds': 20,
      'log.level': 'debug',
      'log.file': '/var/log/ondemand.log',
      'metrics.address': '127.0.0.1:9100',
    });
    // Every key of the table is in the example (docs/config.md shows the same file).
    expect([...v.keys()].sort()).toEqual([...KEY_NAMES].sort());
  });

  it('takes sizes and durations as numbers too', () => {
    const v = parseConfigText('[cache]\nmax_size = 1048576\n[fetch]\ntimeout = 2.5\n[prefetch]\nrate = 0\n', '/c.toml');
    expect(v.get('cache.max_size')).toBe(1048576);
    expect(v.get('fetch.timeout')).toBe(2.5);
    expect(v.get('prefetch.rate')).toBe(0);
    expect(parseConfigText('[fetch]\ntimeout = "500ms"\n', '/c').get('fetch.timeout')).toBe(0.5);
    expect(parseConfigText('[fetch]\ntimeout = "2m"\n', '/c').get('fetch.timeout')).toBe(120);
  });

  it('an empty file sets nothing', () => {
    expect(parseConfigText('', '/c.toml').size).toBe(0);
    expect(parseConfigText('[cache]\n', '/c.toml').size).toBe(0);
  });

  const bad: [string, string, RegExp][] = [
    ['syntax error', '[cache\nx = 1\n', /^config file \/c\.toml: line 1, column \d+: TOML syntax error: \S/],
    ['unterminated string', '[cache]\ndir = "/x\n', /^config file \/c\.toml: line 2, column \d+: TOML syntax error/],
    ['unknown key', '[cache]\nmax_sise = "1G"\n', /^config file \/c\.toml: cache\.max_sise: unknown key \(\[cache\] takes dir, max_size, read_ahead_frames\)$/],
    ['unknown section', '[cachex]\ndir = "/x"\n', /^config file \/c\.toml: \[cachex\]: unknown section \(the sections are \[cache\], /],
    ['key outside a section', 'level = "info"\n', /^config file \/c\.toml: level: unknown key \(keys go in the sections /],
    ['a section given a value', 'cache = 1\n', /^config file \/c\.toml: cache: must be a section \[cache\], not a value$/],
    ['wrong type', '[cache]\nread_ahead_frames = "2"\n', /^config file \/c\.toml: cache\.read_ahead_frames: must be a whole number >= 0, not the string "2"$/],
    ['negative count', '[registry]\nretries = -1\n', /registry\.retries: must be a whole number >= 0, not the number -1$/],
    ['fraction', '[cache]\nread_ahead_frames = 1.5\n', /cache\.read_ahead_frames: must be a whole number >= 0/],
    ['bad size string', '[cache]\nmax_size = "lots"\n', /^config file \/c\.toml: cache\.max_size: bad size "lots": use a number with an optional K, M, G or T suffix$/],
    ['size of wrong type', '[prefetch]\nrate = true\n', /prefetch\.rate: must be a size such as "20G" or a number of bytes, not the boolean true$/],
    ['relative path', '[cache]\ndir = "cache"\n', /cache\.dir: must be an absolute path, not "cache"$/],
    ['bad level', '[log]\nlevel = "loud"\n', /log\.level: must be one of fatal, error, warn, info, debug, trace, silent, not "loud"$/],
    ['bad bool', '[prefetch]\nenabled = "yes"\n', /prefetch\.enabled: must be true or false, not the string "yes"$/],
    ['bad duration', '[fetch]\ntimeout = "soon"\n', /fetch\.timeout: must be a duration > 0/],
    ['zero duration', '[fetch]\ntimeout = 0\n', /fetch\.timeout: must be a duration > 0, not 0$/],
    ['mirrors not a list', '[registry]\nmirrors = "m:5000"\n', /registry\.mirrors: must be an array of strings, not the string "m:5000"$/],
    ['mirror not a string', '[registry]\nmirrors = ["m:5000", 3]\n', /registry\.mirrors: item 2 must be a host/],
    ['mirror with a bad scheme', '[registry]\nmirrors = ["ftp://m"]\n', /registry\.mirrors: "ftp:\/\/m": a mirror URL must be http/],
    ['bad address', '[metrics]\naddress = "everywhere"\n', /metrics\.address: must be a listen address HOST:PORT/],
    ['port out of range', '[metrics]\naddress = ":70000"\n', /metrics\.address: must be a listen address/],
    ['a date', '[cache]\ndir = 1979-05-27\n', /cache\.dir: must be an absolute path, not a date$/],
    ['a table for a value', '[cache.dir]\nx = 1\n', /cache\.dir: must be an absolute path, not a table$/],
  ];
  for (const [what, text, message] of bad) {
    it(`fails in one line on: ${what}`, () => {
      const err = errorOf(() => parseConfigText(text, '/c.toml'));
      expect(err).toBeInstanceOf(ConfigError);
      expect(err.message).toMatch(message);
      expect(err.message).not.toContain('\n');
    });
  }
});

describe('precedence: flags > environment > file > defaults', () => {
  let tmp: { dir: string; remove: () => void };
  let file: string;
  beforeAll(() => {
    tmp = makeTempDir('config-unit');
    file = join(tmp.dir, 'config.toml');
    writeFileSync(file, FULL);
  });
  afterAll(() => tmp.remove());

  it('defaults alone (no file at the default path is fine)', () => {
    const c = resolveConfig({ env: {}, noFile: true });
    expect(c.file).toBeNull();
    for (const key of KEY_NAMES) expect(c.settings[key].source).toEqual({ kind: 'default' });
    expect(setting(c, 'cache.dir')).toBe(DEFAULT_CACHE_DIR);
    expect(setting(c, 'cache.max_size')).toBeNull();
    expect(setting(c, 'cache.read_ahead_frames')).toBe(DAEMON_READ_AHEAD_FRAMES);
    expect(setting(c, 'fetch.timeout')).toBe(30);
    expect(setting(c, 'registry.retries')).toBe(DEFAULT_RETRY.attempts - 1);
    expect(setting(c, 'registry.mirrors')).toEqual([]);
    expect(setting(c, 'prefetch.enabled')).toBe(false);
    expect(setting(c, 'log.level')).toBe('warn');
    expect(setting(c, 'metrics.address')).toBeNull();
  });

  it('the default cache dir is the cache\'s own', () => {
    expect(DEFAULT_CACHE_DIR).toBe(CACHE_DEFAULT);
  });

  it('each layer wins over the ones below it, and says so', () => {
    const c = resolveConfig({
      configFlag: file,
      env: { ONDEMAND_CACHE_MAX_SIZE: '1G', ONDEMAND_FETCH_TIMEOUT: '7', ONDEMAND_CACHE_DIR: '/from/env', ONDEMAND_REGISTRY_MIRRORS: 'a:1, b:2' },
      flags: {
        'cache.dir': { flag: '--cache-dir', value: '/from/flag' },
        'prefetch.enabled': { flag: '--no-prefetch', value: false },
        'cache.max_size': { flag: '--max-size', value: undefined },
      },
    });
    expect(c.file).toEqual({ path: file, from: { kind: 'flag', name: '--config' } });
    expect(c.settings['cache.dir']).toEqual({ value: '/from/flag', source: { kind: 'flag', name: '--cache-dir' } });
    expect(c.settings['prefetch.enabled']).toEqual({ value: false, source: { kind: 'flag', name: '--no-prefetch' } });
    expect(c.settings['cache.max_size']).toEqual({ value: 1024 ** 3, source: { kind: 'env', name: 'ONDEMAND_CACHE_MAX_SIZE' } });
    expect(c.settings['fetch.timeout']).toEqual({ value: 7, source: { kind: 'env', name: 'ONDEMAND_FETCH_TIMEOUT' } });
    expect(c.settings['registry.mirrors'].value).toEqual(['a:1', 'b:2']);
    expect(c.settings['cache.read_ahead_frames']).toEqual({ value: 4, source: { kind: 'file', path: file } });
    expect(c.settings['log.level']).toEqual({ value: 'debug', source: { kind: 'file', path: file } });
    expect(describeSource(c.settings['cache.read_ahead_frames'].source)).toBe(`file ${file}`);
    expect(describeSource(c.settings['cache.dir'].source)).toBe('flag --cache-dir');
    expect(describeSource(c.settings['fetch.timeout'].source)).toBe('env ONDEMAND_FETCH_TIMEOUT');
  });

  it('an empty variable counts as unset', () => {
    const c = resolveConfig({ configFlag: file, env: { ONDEMAND_CACHE_DIR: '', ONDEMAND_LOG_LEVEL: ' ' } });
    expect(c.settings['cache.dir'].source).toEqual({ kind: 'file', path: file });
    expect(c.settings['log.level'].source).toEqual({ kind: 'file', path: file });
  });

  it('the file: --config, else $ONDEMAND_CONFIG, else the default path', () => {
    const other = join(tmp.dir, 'other.toml');
    writeFileSync(other, '[cache]\nread_ahead_frames = 9\n');
    const byEnv = resolveConfig({ env: { ONDEMAND_CONFIG: other } });
    expect(byEnv.file).toEqual({ path: other, from: { kind: 'env', name: 'ONDEMAND_CONFIG' } });
    expect(setting(byEnv, 'cache.read_ahead_frames')).toBe(9);
    const byFlag = resolveConfig({ configFlag: file, env: { ONDEMAND_CONFIG: other } });
    expect(setting(byFlag, 'cache.read_ahead_frames')).toBe(4);
    // This machine has no /etc/ondemand/config.toml in tests (a developer's own would change defaults).
    const byDefault = resolveConfig({ env: {} });
    expect(byDefault.file === null || byDefault.file.path === DEFAULT_CONFIG_PATH).toBe(true);
  });

  it('a relative --config or flag path is taken from the working directory', () => {
    const c = resolveConfig({ env: {}, noFile: true, flags: { 'cache.dir': { flag: '--cache-dir', value: 'rel/cache' } } });
    expect(setting(c, 'cache.dir')).toBe(join(process.cwd(), 'rel/cache'));
  });

  it('a file named explicitly must exist; a directory is no file', () => {
    const missing = join(tmp.dir, 'missing.toml');
    expect(errorOf(() => resolveConfig({ configFlag: missing, env: {} })).message)
      .toBe(`config file ${missing} (from flag --config) does not exist`);
    expect(errorOf(() => resolveConfig({ env: { ONDEMAND_CONFIG: missing } })).message)
      .toBe(`config file ${missing} (from env ONDEMAND_CONFIG) does not exist`);
    const dir = join(tmp.dir, 'a-dir');
    mkdirSync(dir);
    expect(errorOf(() => resolveConfig({ configFlag: dir, env: {} })).message).toMatch(/a-dir \(from flag --config\) is a directory$/);
  });

  it('a bad variable names itself and the key; a bad flag is bad usage', () => {
    const e1 = errorOf(() => resolveConfig({ env: { ONDEMAND_CACHE_READ_AHEAD_FRAMES: '-1' }, noFile: true }));
    expect(e1).toBeInstanceOf(ConfigError);
    expect(e1.message).toBe('$ONDEMAND_CACHE_READ_AHEAD_FRAMES (cache.read_ahead_frames): must be a whole number >= 0, not "-1"');
    const e2 = errorOf(() => resolveConfig({ env: { ONDEMAND_FETCH_TIMEOUT: 'x' }, noFile: true }));
    expect(e2.message).toMatch(/^\$ONDEMAND_FETCH_TIMEOUT \(fetch\.timeout\): must be a duration > 0/);
    const e3 = errorOf(() => resolveConfig({ env: {}, noFile: true, flags: { 'cache.max_size': { flag: '--max-size', value: 'zz' } } }));
    expect(e3).toBeInstanceOf(UsageError);
    expect(e3.message).toBe('--max-size: bad size "zz": use a number with an optional K, M, G or T suffix');
  });
});

describe('the hand-over to the daemon', () => {
  it('round-trips values and sources', () => {
    const c = resolveConfig({
      env: { ONDEMAND_CACHE_MAX_SIZE: '3G', ONDEMAND_REGISTRY_MIRRORS: 'm:1' },
      noFile: true,
      flags: { 'cache.dir': { flag: '--cache-dir', value: '/x' } },
    });
    const back = configFromJson(JSON.stringify(configToJson(c)), 'test');
    expect(back).toEqual(c);
  });

  it('checks what it is handed', () => {
    expect(errorOf(() => configFromJson('{', 'H')).message).toBe('H: not JSON');
    expect(errorOf(() => configFromJson('{"file":null,"settings":{"cache.nope":{"value":1,"source":{"kind":"default"}}}}', 'H')).message).toBe('H: cache.nope: unknown key');
    expect(errorOf(() => configFromJson('{"file":null,"settings":{"cache.dir":{"value":"rel","source":{"kind":"default"}}}}', 'H')).message)
      .toBe('H: cache.dir: must be an absolute path, not "rel"');
    // Keys it lacks take their defaults.
    const c = configFromJson('{"file":null,"settings":{}}', 'H');
    expect(setting(c, 'cache.dir')).toBe(DEFAULT_CACHE_DIR);
  });
});

describe('the daemon\'s cache options', () => {
  it('come from the configuration', () => {
    const c: ResolvedConfig = resolveConfig({ env: { ONDEMAND_PREFETCH_RATE: '10M', ONDEMAND_CACHE_MAX_SIZE: '1G', ONDEMAND_CACHE_DIR: '/c' }, noFile: true });
    expect(cacheOptionsFrom(c)).toEqual({ dir: '/c', readAheadFrames: DAEMON_READ_AHEAD_FRAMES, maxSize: 1024 ** 3, prefetchBytesPerSecond: 10 * 1024 ** 2 });
    // Benchmarks and the compat guest: the environment alone, no file.
    expect(cacheOptions('/d', { ONDEMAND_CACHE_READ_AHEAD_FRAMES: '0' })).toEqual({ dir: '/d', readAheadFrames: 0 });
  });
});

describe('the registry settings every command uses', () => {
  let tmp: { dir: string; remove: () => void };
  beforeAll(() => { tmp = makeTempDir('config-registry'); });
  afterAll(() => tmp.remove());

  it('mirrors, retries, the Docker config, and registry.creds_file below the flags', async () => {
    const { registryAccess } = await import('../../src/cli/image-ref.js');
    const creds = join(tmp.dir, 'creds');
    writeFileSync(creds, 'alice:s3cret\n');
    const config = resolveConfig({
      env: { ONDEMAND_REGISTRY_MIRRORS: 'm:5000', ONDEMAND_REGISTRY_RETRIES: '1', ONDEMAND_DOCKER_CONFIG: '/etc/d.json', ONDEMAND_REGISTRY_CREDS_FILE: creds },
      noFile: true,
    });
    const access = await registryAccess({ insecure: false }, config);
    expect(access).toEqual({ insecure: false, mirrors: ['m:5000'], retries: 1, dockerConfig: '/etc/d.json', creds: 'alice:s3cret' });
    // --creds wins over the configured file.
    expect((await registryAccess({ insecure: false, creds: 'bob:pw' }, config)).creds).toBe('bob:pw');
  });
});
