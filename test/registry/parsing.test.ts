/** Pure parts of the registry client: references, challenges, multipart bodies, platforms, back-off, range merging. */
import { describe, expect, it } from 'vitest';
import { parseReference, formatReference } from '../../src/registry/reference.js';
import { parseChallenges } from '../../src/registry/challenge.js';
import { byterangesBoundary, parseByteranges, parseContentRange } from '../../src/registry/multipart.js';
import { hostPlatform, parsePlatform, selectPlatform } from '../../src/registry/platform.js';
import { backoffDelay, parseRetryAfter, DEFAULT_RETRY } from '../../src/registry/retry.js';
import { renewTime } from '../../src/registry/auth.js';
import { mergeSpans } from '../../src/registry/ranges.js';
import { isLoopbackHost } from '../../src/registry/send.js';
import { FetchError, NotFoundError, UsageError } from '../../src/util/errors.js';

const D = 'sha256:' + 'ab'.repeat(32);

describe('image references', () => {
  it('applies Docker Hub defaults', () => {
    expect(parseReference('debian')).toEqual({ registry: 'docker.io', endpoint: 'registry-1.docker.io', repository: 'library/debian', tag: 'latest' });
    expect(parseReference('user/app:1.0')).toMatchObject({ registry: 'docker.io', repository: 'user/app', tag: '1.0' });
    expect(parseReference('index.docker.io/library/x')).toMatchObject({ registry: 'docker.io', repository: 'library/x' });
  });
  it('parses hosts, ports, tags and digests', () => {
    expect(parseReference('127.0.0.1:5000/a/b/c:v1')).toEqual({ registry: '127.0.0.1:5000', endpoint: '127.0.0.1:5000', repository: 'a/b/c', tag: 'v1' });
    expect(parseReference(`localhost/x@${D}`)).toEqual({ registry: 'localhost', endpoint: 'localhost', repository: 'x', digest: D });
    expect(parseReference(`ghcr.io/o/r:t@${D}`)).toMatchObject({ tag: 't', digest: D });
    expect(parseReference('[::1]:5000/x')).toMatchObject({ registry: '[::1]:5000', repository: 'x' });
    expect(formatReference(parseReference('127.0.0.1:5000/a:b'))).toBe('127.0.0.1:5000/a:b');
  });
  it('rejects malformed references with a UsageError saying why', () => {
    const cases: [string, RegExp][] = [
      ['', /empty/],
      ['Upper/Case', /registry host|repository component/],
      ['a//b', /repository component ""/],
      ['a/b:', /tag ""/],
      ['a/b:-x', /tag "-x"/],
      ['a@sha256:123', /digest/],
      ['http://host/x', /not a URL/],
      ['host:99999/x', /port 99999/],
      ['a b', /white space/],
      ['127.0.0.1:5000/', /no repository/],
    ];
    for (const [text, why] of cases) {
      expect(() => parseReference(text), text).toThrow(UsageError);
      expect(() => parseReference(text), text).toThrow(why);
    }
  });
});

describe('WWW-Authenticate', () => {
  it('parses Bearer with quoted params and several challenges', () => {
    expect(parseChallenges('Bearer realm="https://auth.example/token",service="reg,istry",scope="repository:a/b:pull,push"')).toEqual([
      { scheme: 'bearer', params: { realm: 'https://auth.example/token', service: 'reg,istry', scope: 'repository:a/b:pull,push' } },
    ]);
    expect(parseChallenges('Basic realm="x", Bearer realm="y",error="insufficient_scope"')).toEqual([
      { scheme: 'basic', params: { realm: 'x' } },
      { scheme: 'bearer', params: { realm: 'y', error: 'insufficient_scope' } },
    ]);
    expect(parseChallenges(undefined)).toEqual([]);
  });
});

describe('multipart/byteranges', () => {
  it('splits parts by their Content-Range lengths even when data contains the boundary', () => {
    const b = 'XYZ';
    const body = Buffer.from(`--${b}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 0-4/100\r\n\r\n--XYZ\r\n--${b}\r\nContent-Range: bytes 50-52/100\r\n\r\nabc\r\n--${b}--\r\n`);
    expect(byterangesBoundary('multipart/byteranges; boundary=XYZ')).toBe('XYZ');
    expect(byterangesBoundary('application/octet-stream')).toBeUndefined();
    const parts = parseByteranges(body, b);
    expect(parts.map((p) => [p.start, p.data.toString()])).toEqual([
      [0, '--XYZ'],
      [50, 'abc'],
    ]);
    expect(() => parseByteranges(body.subarray(0, 60), b)).toThrow(FetchError);
    expect(parseContentRange('bytes 5-9/*')).toEqual({ start: 5, end: 9 });
    expect(parseContentRange('bytes 9-5/10')).toBeUndefined();
  });
});

describe('platforms', () => {
  it('parses, maps the host and selects from an index', () => {
    expect(parsePlatform('linux/x86_64')).toEqual({ os: 'linux', architecture: 'amd64' });
    expect(() => parsePlatform('linux')).toThrow(UsageError);
    expect(hostPlatform().os).toBe('linux');
    expect(['amd64', 'arm64', 'arm', '386', 'ppc64le', 's390x', 'riscv64']).toContain(hostPlatform().architecture);
    const entries = [
      { digest: 'a', platform: { os: 'linux', architecture: 'arm', variant: 'v6' } },
      { digest: 'b', platform: { os: 'linux', architecture: 'arm', variant: 'v7' } },
      { digest: 'c', platform: { os: 'linux', architecture: 'arm64' } },
      { digest: 'att', platform: { os: 'unknown', architecture: 'unknown' } },
    ];
    expect(selectPlatform(entries, parsePlatform('linux/arm'), 'i').digest).toBe('b');
    expect(selectPlatform(entries, parsePlatform('linux/arm/v6'), 'i').digest).toBe('a');
    expect(selectPlatform(entries, parsePlatform('linux/arm64/v8'), 'i').digest).toBe('c');
    expect(() => selectPlatform(entries, parsePlatform('linux/amd64'), 'i')).toThrow(NotFoundError);
  });
});

describe('retry timing and token renewal', () => {
  it('backs off exponentially with jitter, capped', () => {
    expect(backoffDelay(1, DEFAULT_RETRY, () => 0)).toBe(100);
    expect(backoffDelay(1, DEFAULT_RETRY, () => 0.999)).toBeLessThanOrEqual(200);
    expect(backoffDelay(4, DEFAULT_RETRY, () => 0)).toBe(800);
    expect(backoffDelay(30, DEFAULT_RETRY, () => 1)).toBe(10_000);
  });
  it('reads Retry-After as seconds or a date', () => {
    expect(parseRetryAfter('3')).toBe(3000);
    expect(parseRetryAfter(new Date(10_000).toUTCString(), 4000)).toBe(6000);
    expect(parseRetryAfter('soon')).toBeUndefined();
  });
  it('renews tokens before expires_in runs out (default 60 s)', () => {
    expect(renewTime(300, undefined, 0)).toBe(300_000 - 30_000);
    expect(renewTime(undefined, undefined, 0)).toBe(60_000 - 6000);
    expect(renewTime(10, new Date(1000).toISOString(), 5000)).toBe(1000 + 10_000 - 1000);
  });
});

describe('ranges and hosts', () => {
  it('merges touching and near ranges', () => {
    expect(mergeSpans([{ offset: 10, length: 5 }, { offset: 0, length: 10 }, { offset: 30, length: 1 }], 0)).toEqual([
      { offset: 0, length: 15 },
      { offset: 30, length: 1 },
    ]);
    expect(mergeSpans([{ offset: 0, length: 10 }, { offset: 20, length: 1 }], 10)).toEqual([{ offset: 0, length: 21 }]);
  });
  it('treats only loopback as plain-HTTP by default', () => {
    expect(isLoopbackHost('127.0.0.1:5000')).toBe(true);
    expect(isLoopbackHost('localhost')).toBe(true);
    expect(isLoopbackHost('[::1]:80')).toBe(true);
    expect(isLoopbackHost('10.0.0.1:5000')).toBe(false);
    expect(isLoopbackHost('127.example.com')).toBe(false);
  });
});
