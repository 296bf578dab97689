/**
 * Lazy reads through the real cache from the real registry behind the fault proxy: every read returns
 * the right bytes or fails with an OndemandError before its deadline, and nothing wrong is ever
 * cached (after the faults stop, the whole blob reads back byte-exact and every frame is present).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCache, type CacheBackend, type CachedBlob } from '../../src/cache/index.js';
import { RegistryClient } from '../../src/registry/client.js';
import { resolveRegistryImage } from '../../src/resolve/registry.js';
import { RegistryFetcher } from '../../src/fetch/registry.js';
import { OndemandError, errorText } from '../../src/util/errors.js';
import type { ResolvedImage } from '../../src/resolve/types.js';
import { haveCommand, makeTempDir, needs } from '../helpers/env.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { startFaultProxy, type FaultMode, type FaultProxy } from '../helpers/fault-proxy.js';
import { makeImage, pushImage, type FixtureImage } from './fixtures.js';

const ready = needs('cache over a faulty registry', [haveCommand('docker-registry'), 'docker-registry']);

describe.skipIf(!ready)('cache over a faulty registry', () => {
  let reg: TestRegistry;
  let proxy: FaultProxy;
  let img: FixtureImage;
  let tmp: { dir: string; remove: () => void };
  let cache: CacheBackend;
  let resolved: ResolvedImage;
  let blob: CachedBlob;

  beforeAll(async () => {
    reg = await startRegistry({ auth: 'none' });
    proxy = await startFaultProxy(reg.url);
    img = makeImage([4 * 1024 * 1024]);
    const direct = new RegistryClient({ registry: reg.host, credentials: { env: {}, dockerConfig: '/nonexistent' } });
    await pushImage(direct, 'cf/img', 'v1', img);
    await direct.close();
    tmp = makeTempDir('cache-faults');
    cache = await openCache({ dir: tmp.dir });
    resolved = await resolveRegistryImage(`${proxy.host}/cf/img:v1`);
    // A fetcher with short timeouts and deadline, like a daemon configured for a flaky network.
    const client = new RegistryClient({
      registry: proxy.host,
      credentials: { env: {}, dockerConfig: '/nonexistent' },
      timeouts: { connectMs: 1000, headersMs: 600, bodyIdleMs: 600 },
      retry: { attempts: 5, baseDelayMs: 20, maxDelayMs: 200 },
      deadlineMs: 3000,
    });
    const fetcher = new RegistryFetcher(client, 'cf/img', { closeClient: true });
    const descriptor = resolved.image.blobs[0]!;
    blob = await cache.openBlob(descriptor, { fetcher, toc: await resolved.loadToc(descriptor), image: 'cf/img' });
  });
  afterAll(async () => {
    await cache?.close();
    await resolved?.fetcher.close();
    await proxy?.stop();
    await reg?.stop();
    tmp?.remove();
  });

  it('wrong bytes are refused, not cached, and read correctly once the network heals', async () => {
    proxy.arm({ mode: 'corrupt', afterBytes: 10, times: Infinity });
    const err = await blob.read(0, 100_000).catch((e: unknown) => e);
    proxy.disarm();
    expect(err).toBeInstanceOf(OndemandError);
    expect(errorText(err)).toMatch(/digest|integrity|mismatch/i);
    expect(blob.stats().integrityErrors ?? 0).toBeGreaterThan(0);
    expect(blob.hasFrame?.(0)).toBe(false);
    expect((await blob.read(0, 100_000)).equals(img.blobs[0]!.view.subarray(0, 100_000))).toBe(true);
  });

  it('random faults: each read is right or a clear error in time; afterwards the whole blob is right', async () => {
    const view = img.blobs[0]!.view;
    const modes: FaultMode[] = ['reset', 'truncate', 'stall-body', 'stall-headers', 'status', 'corrupt'];
    let seed = 99;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    let ok = 0;
    for (let i = 0; i < 16; i++) {
      proxy.arm({ mode: modes[rnd(modes.length)]!, status: [500, 503, 429][rnd(3)], times: 1 + rnd(3), afterBytes: rnd(100_000) });
      const offset = rnd(view.length - 1);
      const length = 1 + rnd(300_000);
      const t0 = Date.now();
      try {
        const got = await blob.read(offset, length);
        expect(got.equals(view.subarray(offset, Math.min(view.length, offset + length)))).toBe(true);
        ok++;
      } catch (err) {
        expect(err).toBeInstanceOf(OndemandError);
      }
      expect(Date.now() - t0).toBeLessThan(3000 * 2 + 2000);
      proxy.disarm();
    }
    expect(ok).toBeGreaterThan(4);
    expect((await blob.read(0, view.length)).equals(view)).toBe(true);
    // read() returns once bytes are verified; frames are marked present after they are durable.
    await blob.idle?.();
    expect(blob.isComplete()).toBe(true);
  });
});
