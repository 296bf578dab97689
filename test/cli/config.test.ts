/**
 * `ondemand config show` through the built CLI: a file, the environment and a flag together, each value
 * with its source (text and --json); a bad file fails every command in one line with exit 1.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, needs } from '../helpers/env.js';
import { cliBuilt } from '../mount/harness.js';
import { runCli } from './helpers.js';

interface ShowJson {
  file: { path: string; from: string } | null;
  settings: Record<string, { value: unknown; source: string }>;
}

describe.skipIf(!needs('config show', [cliBuilt(), 'a current build (make build)']))('ondemand config show', () => {
  let tmp: { dir: string; remove: () => void };
  let file: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(() => {
    tmp = makeTempDir('cli-config');
    file = join(tmp.dir, 'config.toml');
    writeFileSync(file, [
      '[cache]', `dir = "${tmp.dir}/file-cache"`, 'max_size = "20G"', 'read_ahead_frames = 4',
      '[fetch]', 'timeout = "45s"',
      '[registry]', 'mirrors = ["mirror.local:5000"]',
      '[prefetch]', 'enabled = true',
      '[metrics]', 'address = "127.0.0.1:9100"',
      '',
    ].join('\n'));
    // None of the variables this test does not set: the test's own environment must not leak in.
    env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ONDEMAND_')));
    env.ONDEMAND_RUN_DIR = join(tmp.dir, 'run');
  });
  afterAll(() => tmp.remove());

  it('shows every value with its source: flag > environment > file > default', async () => {
    const r = await runCli(['config', 'show', '--json', '--config', file, '--cache-dir', join(tmp.dir, 'flag-cache')], {
      env: { ...env, ONDEMAND_FETCH_TIMEOUT: '7', ONDEMAND_CACHE_DIR: join(tmp.dir, 'env-cache'), ONDEMAND_LOG_LEVEL: 'error' },
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const shown = JSON.parse(r.stdout) as ShowJson;
    expect(shown.file).toEqual({ path: file, from: 'flag --config' });
    const s = shown.settings;
    expect(s['cache.dir']).toEqual({ value: join(tmp.dir, 'flag-cache'), source: 'flag --cache-dir' });
    expect(s['fetch.timeout']).toEqual({ value: 7, source: 'env ONDEMAND_FETCH_TIMEOUT' });
    expect(s['log.level']).toEqual({ value: 'error', source: 'env ONDEMAND_LOG_LEVEL' });
    expect(s['cache.max_size']).toEqual({ value: 20 * 1024 ** 3, source: `file ${file}` });
    expect(s['cache.read_ahead_frames']).toEqual({ value: 4, source: `file ${file}` });
    expect(s['registry.mirrors']).toEqual({ value: ['mirror.local:5000'], source: `file ${file}` });
    expect(s['prefetch.enabled']).toEqual({ value: true, source: `file ${file}` });
    expect(s['metrics.address']).toEqual({ value: '127.0.0.1:9100', source: `file ${file}` });
    expect(s['registry.retries']).toEqual({ value: 5, source: 'default' });
    expect(s['log.file']).toEqual({ value: null, source: 'default' });
    expect(Object.keys(s)).toHaveLength(14);
  });

  it('prints one line per key, $ONDEMAND_CONFIG naming the file and --no-prefetch overriding it', async () => {
    const r = await runCli(['config', 'show', '--no-prefetch'], { env: { ...env, ONDEMAND_CONFIG: file, ONDEMAND_CACHE_MAX_SIZE: '1G' } });
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toBe(`config file: ${file} (env ONDEMAND_CONFIG)`);
    expect(lines).toHaveLength(15);
    const row = (key: string): string[] => lines.find((l) => l.startsWith(key + ' '))!.trim().split(/\s{2,}/);
    expect(row('prefetch.enabled')).toEqual(['prefetch.enabled', 'false', 'flag --no-prefetch']);
    expect(row('cache.max_size')).toEqual(['cache.max_size', '1073741824 (1.0 GiB)', 'env ONDEMAND_CACHE_MAX_SIZE']);
    expect(row('fetch.timeout')).toEqual(['fetch.timeout', '45s', `file ${file}`]);
    expect(row('registry.retries')).toEqual(['registry.retries', '5', 'default']);
  });

  it('a bad file: one line naming the file, the key and the problem; exit 1, for any command', async () => {
    const bad = join(tmp.dir, 'bad.toml');
    writeFileSync(bad, '[cache]\nmax_size = "lots"\n');
    for (const args of [['config', 'show', '--config', bad], ['status', '--config', bad], ['--config', bad, 'cache', 'ls']]) {
      const r = await runCli(args, { env });
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toBe(`ondemand: config file ${bad}: cache.max_size: bad size "lots": use a number with an optional K, M, G or T suffix\n`);
    }
  });

  it('syntax errors and unknown keys too', async () => {
    const syntax = join(tmp.dir, 'syntax.toml');
    writeFileSync(syntax, '[cache]\ndir = "/x\n');
    const r1 = await runCli(['config', 'show'], { env: { ...env, ONDEMAND_CONFIG: syntax } });
    expect(r1.code).toBe(1);
    expect(r1.stderr).toMatch(new RegExp(`^ondemand: config file ${syntax}: line 2, column \\d+: TOML syntax error: [^\\n]+\\n$`));
    const unknown = join(tmp.dir, 'unknown.toml');
    writeFileSync(unknown, '[prefetch]\nrate_limit = "1M"\n');
    const r2 = await runCli(['config', 'show', '--config', unknown], { env });
    expect(r2.code).toBe(1);
    expect(r2.stderr).toBe(`ondemand: config file ${unknown}: prefetch.rate_limit: unknown key ([prefetch] takes enabled, rate, trace_seconds)\n`);
  });

  it('a missing file named with --config is an error; none at the default path is not', async () => {
    const missing = join(tmp.dir, 'missing.toml');
    const r = await runCli(['config', 'show', '--config', missing], { env });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`ondemand: config file ${missing} (from flag --config) does not exist\n`);
    const d = await runCli(['config', 'show', '--json'], { env });
    expect(d.code).toBe(0);
    const shown = JSON.parse(d.stdout) as ShowJson;
    // (A machine with its own /etc/ondemand/config.toml shows that one.)
    if (shown.file === null) expect(shown.settings['cache.dir']).toEqual({ value: '/var/cache/ondemand', source: 'default' });
  });

  it('a bad environment variable: one line, exit 1', async () => {
    const r = await runCli(['config', 'show'], { env: { ...env, ONDEMAND_CACHE_READ_AHEAD_FRAMES: 'many' } });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('ondemand: $ONDEMAND_CACHE_READ_AHEAD_FRAMES (cache.read_ahead_frames): must be a whole number >= 0, not "many"\n');
  });
});
