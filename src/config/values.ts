/**
 * The kinds of value a configuration key holds, each with its two readers: one for a value of the
 * TOML file (already typed by the parser: numbers, booleans, arrays) and one for text (an environment
 * variable, a flag). Both throw BadValue with the problem alone; the caller adds where it came from
 * (file and key, variable or flag), so every message names the place once.
 */
import { isAbsolute, resolve } from 'node:path';
import { formatSize, parseSize } from '../cache/size.js';
import { errorText } from '../util/errors.js';

/** A value that does not fit its key: `problem` says why, without saying where it came from. */
export class BadValue extends Error {
  constructor(readonly problem: string) {
    super(problem);
  }
}

export interface ValueKind<T> {
  /** For messages and `config show`: what the key takes, e.g. "a size such as 20G". */
  readonly describe: string;
  /** A value of the file (or of a resolved configuration handed over as JSON). */
  fromValue(v: unknown): T;
  /** Text from the environment or a flag. */
  fromText(text: string): T;
  /** How `config show` prints it. */
  show(v: T): string;
}

/** What a wrong-typed value is, for "must be X, not Y". */
function typeName(v: unknown): string {
  if (Array.isArray(v)) return 'an array';
  if (v === null) return 'null';
  if (v instanceof Date) return 'a date';
  if (typeof v === 'object') return 'a table';
  if (typeof v === 'string') return `the string ${JSON.stringify(v)}`;
  if (typeof v === 'number' || typeof v === 'bigint') return `the number ${String(v)}`;
  if (typeof v === 'boolean') return `the boolean ${v}`;
  return typeof v;
}

function wrongType(kind: string, v: unknown): BadValue {
  return new BadValue(`must be ${kind}, not ${typeName(v)}`);
}

/** A path. The file's paths must be absolute (no guessing what they are relative to); text is taken from this process's cwd. */
export const pathKind: ValueKind<string> = {
  describe: 'an absolute path',
  fromValue(v) {
    if (typeof v !== 'string' || v === '') throw wrongType('an absolute path', v);
    if (!isAbsolute(v)) throw new BadValue(`must be an absolute path, not ${JSON.stringify(v)}`);
    return v;
  },
  // Made absolute here: the daemon runs in / and gets this process's resolved values.
  fromText(text) {
    if (text === '') throw new BadValue('must be a path, not empty');
    return resolve(text);
  },
  show: (v) => v,
};

/** A byte size: a whole number of bytes, or text such as "512M", "20G", "1.5GiB" (binary units). */
export const sizeKind: ValueKind<number> = {
  describe: 'a size such as 20G (or a number of bytes)',
  fromValue(v) {
    if (typeof v === 'number') {
      if (!Number.isSafeInteger(v) || v < 0) throw new BadValue(`must be a whole number of bytes >= 0, not ${v}`);
      return v;
    }
    if (typeof v === 'bigint') throw new BadValue(`${String(v)} bytes is too large`);
    if (typeof v !== 'string') throw wrongType('a size such as "20G" or a number of bytes', v);
    return sizeKind.fromText(v);
  },
  fromText(text) {
    try {
      return parseSize(text);
    } catch (err) {
      throw new BadValue(errorText(err));
    }
  },
  show: (v) => (v < 1024 ? String(v) : `${v} (${formatSize(v)})`),
};

/** A whole number >= 0. */
export const countKind: ValueKind<number> = {
  describe: 'a whole number >= 0',
  fromValue(v) {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw wrongType('a whole number >= 0', v);
    return v;
  },
  fromText(text) {
    const t = text.trim();
    if (!/^[0-9]+$/.test(t)) throw new BadValue(`must be a whole number >= 0, not ${JSON.stringify(text)}`);
    return countKind.fromValue(Number(t));
  },
  show: (v) => String(v),
};

export const boolKind: ValueKind<boolean> = {
  describe: 'true or false',
  fromValue(v) {
    if (typeof v !== 'boolean') throw wrongType('true or false', v);
    return v;
  },
  fromText(text) {
    const t = text.trim().toLowerCase();
    if (['1', 'true', 'yes', 'on'].includes(t)) return true;
    if (['0', 'false', 'no', 'off'].includes(t)) return false;
    throw new BadValue(`must be true or false (or 1/0, yes/no, on/off), not ${JSON.stringify(text)}`);
  },
  show: (v) => String(v),
};

const DURATION_UNITS: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600 };

/** A duration in seconds: a number of seconds, or text such as "30s", "500ms", "2m". Must be > 0. */
export const secondsKind: ValueKind<number> = {
  describe: 'a duration such as 30s, 500ms or 2m (or a number of seconds)',
  fromValue(v) {
    if (typeof v === 'number') {
      if (!Number.isFinite(v) || v <= 0) throw new BadValue(`must be a duration > 0, not ${v}`);
      return v;
    }
    if (typeof v !== 'string') throw wrongType('a duration such as "30s" or a number of seconds', v);
    return secondsKind.fromText(v);
  },
  fromText(text) {
    const m = /^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h)?\s*$/.exec(text);
    const seconds = m ? Number(m[1]) * DURATION_UNITS[m[2] ?? 's']! : NaN;
    if (!(seconds > 0)) throw new BadValue(`must be a duration > 0 such as 30s, 500ms or 2m (or a number of seconds), not ${JSON.stringify(text)}`);
    return seconds;
  },
  show: (v) => `${v}s`,
};

/** One of a fixed set of words. */
export function choiceKind<const C extends string>(choices: readonly C[]): ValueKind<C> {
  const list = choices.join(', ');
  const kind: ValueKind<C> = {
    describe: `one of ${list}`,
    fromValue(v) {
      if (typeof v !== 'string') throw wrongType(`one of ${list}`, v);
      return kind.fromText(v);
    },
    fromText(text) {
      const t = text.trim();
      if (!(choices as readonly string[]).includes(t)) throw new BadValue(`must be one of ${list}, not ${JSON.stringify(text)}`);
      return t as C;
    },
    show: (v) => v,
  };
  return kind;
}

/** Registry hosts (`host[:port]` or `http(s)://host[:port]`); text is comma-separated. */
export const hostListKind: ValueKind<string[]> = {
  describe: 'a list of registry hosts (host[:port] or http(s)://host[:port])',
  fromValue(v) {
    if (!Array.isArray(v)) throw wrongType('an array of strings', v);
    return v.map((item: unknown, i) => {
      if (typeof item !== 'string' || item.trim() === '') throw new BadValue(`item ${i + 1} must be a host such as "mirror.example:5000", not ${typeName(item)}`);
      return checkHost(item.trim());
    });
  },
  fromText: (text) => text.split(',').map((s) => s.trim()).filter(Boolean).map(checkHost),
  show: (v) => (v.length === 0 ? '(none)' : v.join(', ')),
};

function checkHost(host: string): string {
  if (/\s/.test(host)) throw new BadValue(`${JSON.stringify(host)} is not a host[:port] or URL`);
  if (/^[a-z]+:\/\//i.test(host)) {
    let url: URL;
    try {
      url = new URL(host);
    } catch {
      throw new BadValue(`${JSON.stringify(host)} is not a URL`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new BadValue(`${JSON.stringify(host)}: a mirror URL must be http:// or https://`);
  }
  return host;
}

/** A listen address `HOST:PORT` (`:PORT` for every interface, `[::1]:PORT` for IPv6). */
export const addressKind: ValueKind<string> = {
  describe: 'a listen address HOST:PORT (or :PORT)',
  fromValue(v) {
    if (typeof v !== 'string') throw wrongType('a listen address such as "127.0.0.1:9100"', v);
    return addressKind.fromText(v);
  },
  fromText(text) {
    const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):([0-9]{1,5})$/.exec(text.trim());
    if (!m || Number(m[2]) > 65535) throw new BadValue(`must be a listen address HOST:PORT such as 127.0.0.1:9100, not ${JSON.stringify(text)}`);
    return text.trim();
  },
  show: (v) => v,
};

/**
 * A key that may be unset: null. The TOML file cannot say null (leaving the key out is unset); null
 * comes only from defaults and from a resolved configuration handed over as JSON.
 */
export function optional<T>(kind: ValueKind<T>, unset: string): ValueKind<T | null> {
  return {
    describe: kind.describe,
    fromValue: (v) => (v === null ? null : kind.fromValue(v)),
    fromText: (text) => kind.fromText(text),
    show: (v) => (v === null ? unset : kind.show(v)),
  };
}
