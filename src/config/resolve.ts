/**
 * The effective configuration: defaults < the file < the environment < flags, every value with the
 * place it came from. Which file: `--config FILE`, else $ONDEMAND_CONFIG, else /etc/ondemand/config.toml
 * (that one may be missing: defaults; a file named explicitly must exist).
 *
 * Validation is the key table (keys.ts) with one reader per kind of value (values.ts), not a schema
 * library: the same readers check the file's typed values and the text of environment variables and
 * flags, and every message names the file or variable, the key and the problem in one line.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { TomlError, parse as parseToml } from 'smol-toml';
import { ConfigError, UsageError, systemCode } from '../util/errors.js';
import { DEFAULT_CONFIG_PATH, KEYS, KEY_NAMES, sections, type KeyName, type KeySpec, type ValueOf } from './keys.js';
import { BadValue } from './values.js';

/**
 * The environment variable that carries a starting CLI's resolved configuration (ConfigJson) to the
 * daemon it starts: the daemon serves with exactly what that CLI resolved (its file, environment and
 * flags; paths made absolute; sources kept). Internal: not a setting for users.
 */
export const DAEMON_CONFIG_ENV = 'ONDEMAND_DAEMON_CONFIG';

export type Source =
  | { kind: 'default' }
  | { kind: 'file'; path: string }
  | { kind: 'env'; name: string }
  | { kind: 'flag'; name: string };

export interface Setting<T> {
  value: T;
  source: Source;
}

export type Settings = { [K in KeyName]: Setting<ValueOf<K>> };

export interface ResolvedConfig {
  /** The file that was read and how it was named (null: none, the default path does not exist). */
  file: { path: string; from: Source } | null;
  settings: Settings;
}

/** A flag that sets a key: its name as typed (`--cache-dir`) and its value, undefined when not given. */
export interface FlagValue {
  flag: string;
  value: string | boolean | undefined;
}
export type FlagValues = { [K in KeyName]?: FlagValue };

export interface ConfigInputs {
  /** `--config FILE`. */
  configFlag?: string | undefined;
  /** Default: process.env. */
  env?: NodeJS.ProcessEnv;
  flags?: FlagValues;
  /** Read no file at all (library callers configured by the environment alone). */
  noFile?: boolean;
}

/** The effective value of a key. */
export function setting<K extends KeyName>(config: ResolvedConfig, key: K): ValueOf<K> {
  return config.settings[key].value;
}

/** "default", "file PATH", "env NAME", "flag --x": for `config show`. */
export function describeSource(source: Source): string {
  switch (source.kind) {
    case 'default': return 'default';
    case 'file': return `file ${source.path}`;
    case 'env': return `env ${source.name}`;
    case 'flag': return `flag ${source.name}`;
  }
}

/** Which file to read, and what named it. */
function chooseFile(inputs: ConfigInputs, env: NodeJS.ProcessEnv): { path: string; from: Source } {
  if (inputs.configFlag !== undefined) {
    if (inputs.configFlag === '') throw new UsageError('--config needs a file name');
    return { path: resolve(inputs.configFlag), from: { kind: 'flag', name: '--config' } };
  }
  const named = env.ONDEMAND_CONFIG;
  if (named !== undefined && named !== '') return { path: resolve(named), from: { kind: 'env', name: 'ONDEMAND_CONFIG' } };
  return { path: DEFAULT_CONFIG_PATH, from: { kind: 'default' } };
}

/** The file's text, or null when the default file is missing. */
function readText(path: string, from: Source): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    const code = systemCode(err);
    if (code === 'ENOENT' && from.kind === 'default') return null;
    const named = from.kind === 'default' ? '' : ` (from ${describeSource(from)})`;
    const why = code === 'ENOENT' ? 'does not exist' : code === 'EISDIR' ? 'is a directory' : `cannot be read (${code ?? String(err)})`;
    throw new ConfigError(`config file ${path}${named} ${why}`, { path }, { cause: err });
  }
}

function isTable(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

/** TOML text → the values it sets, checked against the key table. Throws ConfigError (one line). */
export function parseConfigText(text: string, path: string): Map<KeyName, unknown> {
  const fail = (what: string): never => {
    throw new ConfigError(`config file ${path}: ${what}`, { path });
  };
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text);
  } catch (err) {
    if (!(err instanceof TomlError)) throw err;
    // smol-toml's message is several lines (a code excerpt with a caret): keep its first, the reason.
    const reason = (err.message.split('\n')[0] ?? '').replace(/^Invalid TOML document:\s*/, '');
    return fail(`line ${err.line}, column ${err.column}: TOML syntax error: ${reason}`);
  }
  const known = sections();
  const sectionList = [...known.keys()].map((s) => `[${s}]`).join(', ');
  const out = new Map<KeyName, unknown>();
  for (const [section, body] of Object.entries(doc)) {
    const names = known.get(section);
    if (!isTable(body)) {
      return fail(names ? `${section}: must be a section [${section}], not a value` : `${section}: unknown key (keys go in the sections ${sectionList})`);
    }
    if (!names) return fail(`[${section}]: unknown section (the sections are ${sectionList})`);
    for (const [name, value] of Object.entries(body)) {
      const key = `${section}.${name}`;
      if (!names.includes(name)) return fail(`${key}: unknown key ([${section}] takes ${names.join(', ')})`);
      const spec = KEYS[key as KeyName] as KeySpec<unknown>;
      try {
        out.set(key as KeyName, spec.kind.fromValue(value));
      } catch (err) {
        if (!(err instanceof BadValue)) throw err;
        return fail(`${key}: ${err.problem}`);
      }
    }
  }
  return out;
}

/** Resolves the configuration. Throws ConfigError for a bad file or variable, UsageError for a bad flag. */
export function resolveConfig(inputs: ConfigInputs = {}): ResolvedConfig {
  const env = inputs.env ?? process.env;
  let file: ResolvedConfig['file'] = null;
  let fromFile = new Map<KeyName, unknown>();
  if (!inputs.noFile) {
    const chosen = chooseFile(inputs, env);
    const text = readText(chosen.path, chosen.from);
    if (text !== null) {
      file = chosen;
      fromFile = parseConfigText(text, chosen.path);
    }
  }
  const settings: Partial<Record<KeyName, Setting<unknown>>> = {};
  for (const key of KEY_NAMES) {
    const spec = KEYS[key] as KeySpec<unknown>;
    let s: Setting<unknown> = { value: spec.default, source: { kind: 'default' } };
    if (file !== null && fromFile.has(key)) s = { value: fromFile.get(key), source: { kind: 'file', path: file.path } };
    // An empty variable counts as unset (as these variables always did).
    const envText = spec.env !== undefined ? env[spec.env] : undefined;
    if (spec.env !== undefined && envText !== undefined && envText.trim() !== '') {
      const value = problemTo(() => spec.kind.fromText(envText), (problem) => new ConfigError(`$${spec.env} (${key}): ${problem}`));
      s = { value, source: { kind: 'env', name: spec.env } };
    }
    const flag = inputs.flags?.[key];
    if (flag !== undefined && flag.value !== undefined) {
      const given = flag.value;
      const value = problemTo(
        () => (typeof given === 'boolean' ? spec.kind.fromValue(given) : spec.kind.fromText(given)),
        (problem) => new UsageError(`${flag.flag}: ${problem}`),
      );
      s = { value, source: { kind: 'flag', name: flag.flag } };
    }
    settings[key] = s;
  }
  return { file, settings: settings as Settings };
}

/** Runs `read`; a BadValue it throws becomes the error `wrap` makes of its problem. */
function problemTo<T>(read: () => T, wrap: (problem: string) => Error): T {
  try {
    return read();
  } catch (err) {
    if (err instanceof BadValue) throw wrap(err.problem);
    throw err;
  }
}

/** The resolved configuration as JSON: how the CLI hands it to the daemon it starts, and `config show --json`. */
export interface ConfigJson {
  file: { path: string; from: Source } | null;
  settings: Record<string, { value: unknown; source: Source }>;
}

export function configToJson(config: ResolvedConfig): ConfigJson {
  return { file: config.file, settings: { ...config.settings } };
}

function isSource(v: unknown): v is Source {
  if (!isTable(v)) return false;
  if (v.kind === 'default') return true;
  if (v.kind === 'file') return typeof v.path === 'string';
  return (v.kind === 'env' || v.kind === 'flag') && typeof v.name === 'string';
}

/**
 * The configuration another process resolved (ConfigJson text), checked again key by key: `where`
 * names the channel for messages. Keys it lacks take their defaults.
 */
export function configFromJson(text: string, where: string): ResolvedConfig {
  const fail = (what: string): never => {
    throw new ConfigError(`${where}: ${what}`);
  };
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return fail('not JSON');
  }
  if (!isTable(doc) || !isTable(doc.settings)) return fail('not a resolved configuration');
  const fileField = doc.file;
  let file: ResolvedConfig['file'] = null;
  if (fileField !== null) {
    if (!isTable(fileField) || typeof fileField.path !== 'string' || !isSource(fileField.from)) return fail('bad "file"');
    file = { path: fileField.path, from: fileField.from };
  }
  const settings: Partial<Record<KeyName, Setting<unknown>>> = {};
  for (const [key, entry] of Object.entries(doc.settings)) {
    if (!(key in KEYS)) return fail(`${key}: unknown key`);
    if (!isTable(entry) || !isSource(entry.source)) return fail(`${key}: bad entry`);
    const spec = KEYS[key as KeyName] as KeySpec<unknown>;
    settings[key as KeyName] = { value: problemTo(() => spec.kind.fromValue(entry.value), (p) => new ConfigError(`${where}: ${key}: ${p}`)), source: entry.source };
  }
  for (const key of KEY_NAMES) settings[key] ??= { value: (KEYS[key] as KeySpec<unknown>).default, source: { kind: 'default' } };
  return { file, settings: settings as Settings };
}
