/**
 * Must show 3: a child filling the cache is SIGKILLed at random points, 200 times. After each kill
 * the persisted map (read directly, before any repair) names only frames whose bytes are right, and
 * a restarted cache reads the whole blob correctly. Runs the compiled dist/ (built here if stale).
 */
import { spawn } from 'node:child_process';
import { cpSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { openCache } from '../../src/cache/index.js';
import { decodeMapAny } from '../../src/cache/presence-map.js';
import { makeBlobFixture } from '../helpers/blob-fixture.js';
import { tempDir, useCleanups } from './helpers.js';
import { ensureBuilt, privateDistCopy } from './dist-build.js';

useCleanups();
/** 200 as the issue asks; ONDEMAND_CRASH_ROUNDS lowers it for quick local runs. */
const ROUNDS = Number(process.env.ONDEMAND_CRASH_ROUNDS ?? 200);
let compiledSrc = '';
beforeAll(() => {
  ensureBuilt('dist/src/cache/index.js', ['src/cache', 'src/format/image', 'src/native', 'src/util']);
  const copy = privateDistCopy('cache/index.js');
  compiledSrc = copy.src;
  return copy.remove;
});

interface WarmChild {
  run(args: string[], killAfterMs: number, killAfterPresent: number): Promise<void>;
  kill(): void;
}

/** Starts a child that has done its imports and waits for its arguments on stdin. */
function warmChild(total: number): WarmChild {
  const child = spawn(process.execPath, [join(import.meta.dirname, 'crash-child.mjs')], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, ONDEMAND_CRASH_SRC: compiledSrc },
  });
  let stderr = '';
  let ready = false;
  let killAfter = 0;
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve, reject) => {
    child.on('exit', (code, signal) => {
      if (signal === 'SIGKILL' && ready) resolve();
      else reject(new Error(`child ended with ${code ?? signal} before being killed: ${stderr.slice(-2000)}`));
    });
  });
  exited.catch(() => {});
  // Kill once `afterPresent` frames are present (progress lines 'pN'), then `killAfter` ms more:
  // kills land before, amid and after fetching, writing, syncing and map writes, whatever the load.
  let afterPresent = 0;
  let armed = false;
  const arm = (): void => {
    if (armed) return;
    armed = true;
    setTimeout(() => child.kill('SIGKILL'), killAfter);
  };
  child.stdout.on('data', (d: Buffer) => {
    for (const line of d.toString().split('\n')) {
      if (line === 'ready') ready = true;
      const m = /^p(\d+)$/.exec(line);
      if (ready && m && (Number(m[1]) >= afterPresent || Number(m[1]) === total)) arm();
    }
  });
  return {
    run: (args, killAfterMs, killAfterPresent) => {
      killAfter = killAfterMs;
      afterPresent = killAfterPresent;
      child.stdin.write(JSON.stringify(args) + '\n');
      return exited;
    },
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

describe('crash consistency', () => {
  it(`3. SIGKILL at random points while filling, ${ROUNDS} times: present frames are right, whole blob reads right`, async () => {
    const fx = makeBlobFixture({ size: 768 * 1024 - 5000, frameSize: 16384, compression: 'gzip', seed: 42 });
    const work = tempDir('crash');
    const storedPath = join(work, 'stored');
    const metaPath = join(work, 'meta.json');
    writeFileSync(storedPath, fx.stored);
    writeFileSync(metaPath, JSON.stringify({ descriptor: fx.descriptor, toc: fx.toc }));
    const total = fx.toc.frames.length;
    const frameOk = (data: Buffer, i: number): boolean => {
      const f = fx.toc.frames[i]!;
      const end = f.uncompressedOffset + f.uncompressedSize;
      return data.subarray(f.uncompressedOffset, end).equals(fx.uncompressed.subarray(f.uncompressedOffset, end));
    };
    const stats = { present: 0, wipes: 0, childMs: 0, checkMs: 0 };
    const pools: WarmChild[][] = [];

    /** One lane: its own cache dir and warm children; two lanes overlap child start-up with checks. */
    const lane = async (laneNo: number, rounds: number): Promise<void> => {
      const dir = join(work, `cache-${laneNo}`);
      const mapPath = join(dir, 'blobs', `${fx.toc.blobId}.map`);
      const dataPath = join(dir, 'blobs', `${fx.toc.blobId}.data`);
      let seed = 777 + laneNo;
      const rnd = (n: number): number => {
        seed = (seed * 1103515245 + 12345) & 0x7fffffff;
        return seed % n;
      };
      const pool = [warmChild(total)];
      pools.push(pool);
      for (let round = 0; round < rounds; round++) {
        const t0 = performance.now();
        const child = pool.shift()!;
        if (round + 1 < rounds) pool.push(warmChild(total));
        await child.run([dir, storedPath, metaPath, String(laneNo * 1000 + round + 1)], rnd(16), rnd(total));
        const t1 = performance.now();
        stats.childMs += t1 - t0;

        // The persisted state as the kill left it, before anything repairs it.
        const map = existsSync(mapPath) ? decodeMapAny(readFileSync(mapPath)) : undefined;
        const data = existsSync(dataPath) ? readFileSync(dataPath) : Buffer.alloc(0);
        for (const i of map?.bits.present() ?? []) {
          if (!frameOk(data, i)) throw new Error(`lane ${laneNo} round ${round}: frame ${i} marked present with wrong bytes`);
        }
        stats.present += map?.bits.count ?? 0;

        // Restart on a copy (the original keeps its partial state for the next child).
        const copy = join(work, `check-${laneNo}`);
        cpSync(dir, copy, { recursive: true });
        const cache = await openCache({ dir: copy });
        try {
          const blob = await cache.openBlob(fx.descriptor, { fetcher: fx.fetcher, toc: fx.toc });
          const onDisk = readFileSync(join(copy, 'blobs', `${fx.toc.blobId}.data`));
          for (let i = 0; i < total; i++) {
            if (blob.hasFrame?.(i) && !frameOk(onDisk, i)) throw new Error(`lane ${laneNo} round ${round}: restarted cache claims frame ${i}`);
          }
          expect((await blob.read(0, fx.uncompressed.length)).equals(fx.uncompressed)).toBe(true);
        } finally {
          await cache.close();
          rmSync(copy, { recursive: true, force: true });
        }
        stats.checkMs += performance.now() - t1;
        if (map && map.bits.count === total) {
          rmSync(dir, { recursive: true, force: true });
          stats.wipes++;
        }
      }
    };

    const started = Date.now();
    try {
      await Promise.all([lane(0, Math.ceil(ROUNDS / 2)), lane(1, Math.floor(ROUNDS / 2))]);
    } finally {
      for (const pool of pools) for (const c of pool) c.kill();
    }
    process.stderr.write(
      `crash test: ${ROUNDS} kills in ${Date.now() - started} ms over 2 lanes (per round: child start to kill ` +
        `${(stats.childMs / ROUNDS).toFixed(0)} ms, check ${(stats.checkMs / ROUNDS).toFixed(0)} ms), ` +
        `${stats.present} present frames checked, ${stats.wipes} full fills\n`,
    );
    expect(stats.present).toBeGreaterThan(0);
  }, 900_000);
});
