/**
 * Issue 13's fault campaign: a real registry, images mounted through the real CLI and daemon, and a
 * seeded random walk of faults — kill -9 of the worker or the supervisor, the registry hung, down or
 * restarted, tags moved, the cache evicted, verified or its files corrupted, truncated or deleted,
 * mounts made and unmade — while child-process readers compare every byte they read with the source.
 *
 * Expected: every read is right or fails with an error a program sees; never wrong bytes, never zeros
 * where the source has data, never a hung read; no mount or loop device left behind.
 *
 * Knobs: CAMPAIGN_SEED (replay), CAMPAIGN_ITERATIONS (default 300), CAMPAIGN_BUDGET_S (wall clock,
 * default 360), CAMPAIGN_CACHE_TAMPER=offline|live|0 (corrupting/truncating/deleting cache files: while
 * no daemon runs, also while one serves them, or never; see TAMPER_MODE), CAMPAIGN_MODES=auto,fuse-tree,...
 * (each mount takes one of these `--mode`s at random; default auto,fuse-blobs,fuse-tree: every mode
 * of this host), CAMPAIGN_LOG=FILE (every action and every failed read, for a reproduction).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomInt } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { haveCommand, isRoot, makeTempDir, needs } from '../helpers/env.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import {
  alive, cliBuilt, leftovers, loopDevices, makeHarness, readCheck, waitUntil, type Harness, type ReadOutcome, type ReadRequest,
} from '../mount/harness.js';
import { cliHas } from '../mount/images.js';
import { MAP_HEADER, MAP_HEADER_SIZE } from '../../src/cache/map-layout.js';

const ready = needs('fault campaign', [isRoot, 'root'], [cliBuilt(), 'a current build (make build)'], [cliHas('build'), 'ondemand build'],
  [cliHas('push'), 'ondemand push'], [haveCommand('docker-registry'), 'docker-registry']);

const SEED = process.env.CAMPAIGN_SEED ? Number(process.env.CAMPAIGN_SEED) : randomInt(2 ** 31);
const ITERATIONS = Number(process.env.CAMPAIGN_ITERATIONS ?? 300);
const BUDGET_MS = Number(process.env.CAMPAIGN_BUDGET_S ?? 360) * 1000;
/**
 * Cache tampering: `offline` (default) while no daemon runs, behind its back: the next daemon must
 * notice before serving a byte; `live` also while a daemon serves the files (its tamper watch must
 * notice first: docs/cache.md, "Changed while served"; auto picks fanotify here, whose reads all ask
 * the daemon once the change is noticed); `0` never.
 */
/** The `--mode` of each mount, picked at random from these. */
const MODES = (process.env.CAMPAIGN_MODES ?? 'auto,fuse-blobs,fuse-tree').split(',').map((m) => m.trim()).filter((m) => m !== '');
const TAMPER_MODE = process.env.CAMPAIGN_CACHE_TAMPER === '0' ? 'off' : process.env.CAMPAIGN_CACHE_TAMPER === 'live' ? 'live' : 'offline';
/** Reads of data the registry cannot deliver fail after this (the daemon's $ONDEMAND_FETCH_TIMEOUT). */
const FETCH_TIMEOUT_S = 2;
/**
 * A read round not finished by then is hung: a read of missing data fails within about one fetch
 * deadline (the first failing frame ends it), and a worker restart takes a few seconds at most.
 */
const READ_DEADLINE_MS = 20_000;
const IMAGE_COUNT = 5;
const MAX_MOUNTS = 3;
/** Small frames: a file spans several, so reads find frames present, missing and half-evicted. */
const FRAME_SIZE = 64 * 1024;
/** The daemon's cache limit: below the images' total, so it evicts unmounted blobs by itself. */
const CACHE_MAX_SIZE = '6M';

/** mulberry32: small, seedable, good enough to pick faults. */
class Random {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  bytes(n: number): Buffer {
    const out = Buffer.alloc(n);
    for (let i = 0; i + 4 <= n; i += 4) out.writeUInt32LE(Math.floor(this.next() * 4294967296), i);
    for (let i = n - (n % 4); i < n; i++) out[i] = this.int(256);
    return out;
  }
}

/** One image's source tree: a few MB in files of several sizes, one with runs of zeros (holes). */
function writeTree(dir: string, rnd: Random, label: string): void {
  mkdirSync(join(dir, 'etc'), { recursive: true });
  mkdirSync(join(dir, 'data', 'nested'), { recursive: true });
  writeFileSync(join(dir, 'etc', 'motd'), `campaign image ${label}\n`);
  for (let i = 0; i < 4; i++) writeFileSync(join(dir, 'data', `small-${i}.bin`), rnd.bytes(5_000 + rnd.int(30_000)));
  writeFileSync(join(dir, 'data', 'medium.bin'), rnd.bytes(200_000 + rnd.int(200_000)));
  writeFileSync(join(dir, 'data', 'nested', 'large.bin'), rnd.bytes(1_000_000 + rnd.int(500_000)));
  const gappy = Buffer.alloc(320 * 1024);
  for (let off = 0; off < gappy.length; off += 128 * 1024) rnd.bytes(64 * 1024).copy(gappy, off);
  writeFileSync(join(dir, 'data', 'gappy.bin'), gappy);
}

const TREE_FILES = ['etc/motd', 'data/small-0.bin', 'data/small-1.bin', 'data/small-2.bin', 'data/small-3.bin', 'data/medium.bin', 'data/nested/large.bin', 'data/gappy.bin'];

interface Image { tree: string; layout: string; tag: string; digest: string; blobIds: string[]; bootstrapHex: string }

type MountRef = 'digest' | 'fixed tag' | 'moving tag';
interface LiveMount { mountpoint: string; image: number; ref: string; by: MountRef; madeAt: number; supervisorPid: number; dead: boolean }

function mountedPaths(): Set<string> {
  return new Set(readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean)
    .map((l) => l.split(' ')[4]!.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)))));
}

/**
 * The worker pids among the children of `parent` (a supervisor), from /proc. Not its fanotify group
 * holder (also its child until it dies): that one must outlive it, and killing it would close the
 * group under the mounts; nor a tool it runs for a moment (losetup), gone by the time it is killed.
 */
function childrenOf(parent: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      // The worker only: not the fanotify holder, nor a short-lived tool the supervisor runs (losetup...).
      if (ppid === parent && readFileSync(`/proc/${name}/cmdline`, 'utf8').includes('worker-main')) out.push(Number(name));
    } catch { /* exited meanwhile */ }
  }
  return out;
}

/** Frames whose bit is set in a presence map file (`<id>.map`), with the frame size; empty if unreadable. */
function presentFrames(mapFile: string): { frameSize: number; size: number; frames: number[] } {
  const none = { frameSize: 0, size: 0, frames: [] };
  let map: Buffer;
  try {
    map = readFileSync(mapFile);
  } catch {
    return none;
  }
  if (map.length < MAP_HEADER_SIZE) return none;
  const frameSize = map.readUInt32LE(MAP_HEADER.frameSize);
  const frameCount = map.readUInt32LE(MAP_HEADER.frameCount);
  const size = Number(map.readBigUInt64LE(MAP_HEADER.size));
  const frames: number[] = [];
  for (let i = 0; i < frameCount && MAP_HEADER_SIZE + (i >> 3) < map.length; i++) {
    if (map[MAP_HEADER_SIZE + (i >> 3)]! & (1 << (i & 7))) frames.push(i);
  }
  return { frameSize, size, frames };
}

type RegistryState = 'up' | 'hung' | 'down';

interface Failure { iteration: number; outcome: ReadOutcome; mount: string; file: string; detail: string; suspect: string; recent: string[] }

describe.skipIf(!ready)('fault campaign (issue 13)', () => {
  let h: Harness;
  let reg: TestRegistry;
  let src: { dir: string; remove: () => void };
  let repo: string;
  const images: Image[] = [];
  /** Which image each moving tag names now. */
  const movingTags = new Map<string, number>([['moving-a', 0], ['moving-b', 1]]);

  beforeAll(async () => {
    h = makeHarness('campaign', { ONDEMAND_FETCH_TIMEOUT: String(FETCH_TIMEOUT_S), ONDEMAND_CACHE_MAX_SIZE: CACHE_MAX_SIZE });
    src = makeTempDir('campaign-src');
    reg = await startRegistry();
    repo = `${reg.host}/campaign/app`;
    const contentRandom = new Random(SEED ^ 0x5eed);
    for (let i = 0; i < IMAGE_COUNT; i++) {
      const tree = join(src.dir, `tree-${i}`);
      const layout = join(src.dir, `layout-${i}`);
      writeTree(tree, contentRandom, String(i));
      const built = JSON.parse(await h.ok('build', tree, `oci:${layout}:img${i}`, '--frame-size', String(FRAME_SIZE), '--chunk-size', String(FRAME_SIZE), '--json')) as
        { manifestDigest: string; blobs: { blobId: string }[] };
      await h.ok('push', `oci:${layout}:img${i}`, `${repo}:img${i}`);
      const manifest = JSON.parse(readFileSync(join(layout, 'blobs', 'sha256', built.manifestDigest.split(':')[1]!), 'utf8')) as
        { layers: { annotations?: Record<string, string> }[] };
      const bootstrapDigest = manifest.layers.at(-1)!.annotations!['org.ondemand.bootstrap.digest']!;
      images.push({ tree, layout, tag: `img${i}`, digest: built.manifestDigest, blobIds: built.blobs.map((b) => b.blobId), bootstrapHex: bootstrapDigest.split(':')[1]! });
    }
    for (const [tag, image] of movingTags) await h.ok('push', `oci:${images[image]!.layout}:img${image}`, `${repo}:${tag}`);
  });
  afterAll(async () => {
    await h?.cleanup();
    await reg?.stop();
    src?.remove();
  });

  it(`runs ${ITERATIONS} iterations of faults within ${BUDGET_MS / 1000} s: 0 wrong, 0 zero-filled, 0 hung reads, 0 leaks`, async () => {
    const rnd = new Random(SEED);
    const started = Date.now();
    let registry: RegistryState = 'up';
    const live: LiveMount[] = [];
    let mountSeq = 0;
    const reads: Record<ReadOutcome, number> = { right: 0, error: 0, wrong: 0, 'zero-filled': 0, hung: 0 };
    const errorsBySuspect = new Map<string, number>();
    const errorCodes = new Map<string, number>();
    const failures: Failure[] = [];
    const actions = new Map<string, { done: number; failed: number }>();
    const actionFailures: string[] = [];
    const leakedMounts = new Set<string>();
    const leakedLoops = new Set<string>();
    /** Every action, for the reproduction printed with each failure. */
    const history: string[] = [];
    /** Per image: cache tampering done to its files, and when (iteration). */
    const tampered = new Map<number, { kinds: Set<string>; last: number }>();
    /** Iteration of the last registry fault (hang, down, restart, resume). */
    let lastRegistryFault = -100;
    /** Iteration of the last worker kill made while the registry was hung or down (-1: none). */
    let registryFaultAtWorkerKill = -1;
    const mntRoot = dirname(h.mountpoint('probe'));
    let iteration = 0;

    const count = (name: string, failed = false, why = ''): void => {
      const a = actions.get(name) ?? { done: 0, failed: 0 };
      a.done++;
      if (failed) {
        a.failed++;
        actionFailures.push(`#${iteration} ${name}: ${why}`);
      }
      actions.set(name, a);
    };
    const note = (what: string): void => {
      history.push(`#${iteration} ${what}`);
    };

    /**
     * The devices (MAJ:MIN) of the daemon's private FUSE mounts seen so far: a loop device left over a
     * file of one whose mount is gone shows a path relative to the detached mount ("/bootstrap"),
     * which no path check finds, but its backing device is still that one.
     */
    const fuseDevicesSeen = new Set<string>();
    const noteFuseDevices = (): void => {
      for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
        const f = line.split(' ');
        if (f[4]?.startsWith(h.runDir + '/') && line.includes(' - fuse.')) fuseDevicesSeen.add(f[2]!);
      }
    };
    const loopsLeft = (): string[] => {
      const left = new Set(leftovers(h, [mntRoot]).loops);
      for (const l of loopDevices()) {
        if (!existsSync(l.file) && fuseDevicesSeen.has(l.identity.split(' ')[0]!)) left.add(`${l.name} on ${l.file} (its FUSE mount gone)`);
      }
      return [...left];
    };
    /** Mounts and loop devices under the harness's dirs while nothing should be mounted. */
    const checkQuiet = (): void => {
      if (live.length > 0) return;
      for (const m of leftovers(h, [mntRoot]).mounts) leakedMounts.add(`${m} (seen at #${iteration})`);
      for (const l of loopsLeft()) leakedLoops.add(`${l} (seen at #${iteration})`);
    };

    /**
     * Why a read may have failed: every fault that could explain it, the most specific first (the
     * first one is what the summary groups by).
     */
    const suspectFor = (m: LiveMount): string => {
      const causes: string[] = [];
      const t = tampered.get(m.image);
      if (t !== undefined) causes.push(`cache tamper (${[...t.kinds].sort().join('+')}, last #${t.last})`);
      if (registryFaultAtWorkerKill >= 0 && iteration - registryFaultAtWorkerKill <= 3) causes.push('worker restarted while the registry was hung or down');
      if (m.dead) causes.push('supervisor killed (mount dead)');
      if (registry !== 'up') causes.push(`registry ${registry}`);
      else if (iteration - lastRegistryFault <= 2) causes.push('registry fault just before');
      const recent = history.filter((x) => Number(x.slice(1, x.indexOf(' '))) >= iteration - 1).map((x) => x.split(' ')[1]!);
      if (recent.length > 0) causes.push(`after ${recent.join(', ')}`);
      return causes.join(' + ') || 'unexplained';
    };

    /** Mounts the daemon unmounted by itself (a worker restart that could not re-attach them). */
    const tornDown: string[] = [];
    const noticeTornDown = (): void => {
      const mounted = mountedPaths();
      for (const m of [...live]) {
        if (m.dead || mounted.has(m.mountpoint)) continue;
        tornDown.push(`${m.mountpoint} (image ${m.image}, made #${m.madeAt}, gone at #${iteration} after ${history.slice(-3).join(' | ')})`);
        note(`mount ${m.mountpoint} torn down by the daemon`);
        live.splice(live.indexOf(m), 1);
      }
    };

    const roundOfReads = async (perMount: number, wholeChance: number): Promise<void> => {
      noticeTornDown();
      if (live.length === 0) return;
      const requests: ReadRequest[] = [];
      const owners = new Map<number, { mount: LiveMount; file: string }>();
      for (const m of live) {
        for (let k = 0; k < perMount; k++) {
          const file = rnd.pick(TREE_FILES);
          const source = join(images[m.image]!.tree, file);
          const size = statSync(source).size;
          let ranges: [number, number][] | null = null;
          if (!rnd.chance(wholeChance)) {
            ranges = [];
            for (let r = 1 + rnd.int(3); r > 0; r--) {
              const offset = rnd.int(size);
              ranges.push([offset, 1 + rnd.int(Math.min(128 * 1024, size - offset))]);
            }
          }
          const id = requests.length;
          requests.push({ id, path: join(m.mountpoint, file), source, ranges });
          owners.set(id, { mount: m, file });
        }
      }
      for (const r of await readCheck(requests, READ_DEADLINE_MS)) {
        reads[r.outcome]++;
        if (r.outcome === 'right') continue;
        const { mount, file } = owners.get(r.id)!;
        const suspect = suspectFor(mount);
        if (r.outcome === 'error') {
          const first = suspect.split(' + ')[0]!.replace(/, last #\d+/, '');
          errorsBySuspect.set(first, (errorsBySuspect.get(first) ?? 0) + 1);
          errorCodes.set(r.code ?? '?', (errorCodes.get(r.code ?? '?') ?? 0) + 1);
          continue;
        }
        failures.push({ iteration, outcome: r.outcome, mount: `${mount.mountpoint} (image ${mount.image} by ${mount.by}, made #${mount.madeAt}${mount.dead ? ', dead' : ''})`,
          file, detail: r.detail ?? '', suspect, recent: history.slice(-8) });
      }
    };

    // ---- actions ----------------------------------------------------------------------------

    /** The image each moving tag named when the daemon last resolved it (what it mounts with the registry unreachable). */
    const lastResolved = new Map<string, number>();
    const mount = async (): Promise<void> => {
      const by = rnd.pick<MountRef>(['digest', 'fixed tag', 'moving tag']);
      let image: number;
      let ref: string;
      let tag: string | undefined;
      if (by === 'moving tag') {
        tag = rnd.pick([...movingTags.keys()]);
        image = movingTags.get(tag)!;
        ref = `${repo}:${tag}`;
      } else {
        image = rnd.int(IMAGE_COUNT);
        ref = by === 'digest' ? `${repo}@${images[image]!.digest}` : `${repo}:${images[image]!.tag}`;
      }
      const mp = h.mountpoint(`m${mountSeq++}`);
      const hadDaemon = h.daemonPid();
      const mode = rnd.pick(MODES);
      const r = await h.cli('mount', '--mode', mode, '--image', ref, mp);
      note(`mount image ${image} by ${by} (${mode}) at ${mp} → ${r.code === 0 ? 'ok' : 'failed'}`);
      if (hadDaemon === null) {
        // A new daemon undoes the mounts a killed one left: they must be gone now.
        const mounted = mountedPaths();
        for (const d of live.filter((m) => m.dead)) {
          if (mounted.has(d.mountpoint)) leakedMounts.add(`${d.mountpoint} (dead mount still there after a new daemon started, #${iteration})`);
        }
        if (h.daemonPid() !== null) live.splice(0, live.length, ...live.filter((m) => !m.dead));
      }
      if (r.code !== 0) {
        // Expected while the registry is down; otherwise a finding.
        count('mount', registry === 'up', r.stderr.trim().split('\n').at(-1) ?? '');
        rmSync(mp, { recursive: true, force: true });
        checkQuiet();
        return;
      }
      if (tag !== undefined) {
        // An unreachable registry: the daemon mounts what the tag named when it last resolved it (and says so).
        if (`${r.stdout}${r.stderr}`.includes('using the manifest cached for')) image = lastResolved.get(tag) ?? image;
        else lastResolved.set(tag, image);
      }
      count('mount');
      live.push({ mountpoint: mp, image, ref, by, madeAt: iteration, supervisorPid: h.daemonPid() ?? -1, dead: false });
    };

    const umount = async (): Promise<void> => {
      noticeTornDown();
      if (live.length === 0) return;
      const m = rnd.pick(live);
      const r = await h.cli('umount', m.mountpoint);
      note(`umount ${m.mountpoint}${m.dead ? ' (dead)' : ''} → ${r.code === 0 ? 'ok' : 'failed'}`);
      const stillMounted = mountedPaths().has(m.mountpoint);
      if (r.code !== 0 || stillMounted) {
        count(m.dead ? 'umount dead' : 'umount', true, `${r.stderr.trim()}${stillMounted ? ' (still mounted)' : ''}`);
        if (stillMounted) leakedMounts.add(`${m.mountpoint} (after umount at #${iteration})`);
      } else {
        count(m.dead ? 'umount dead' : 'umount');
      }
      live.splice(live.indexOf(m), 1);
      checkQuiet();
    };

    /** The supervisor's worker, waiting out a restart in progress (its delay grows to 5 s). */
    const workerOf = async (sup: number): Promise<number[]> => {
      let workers: number[] = [];
      await waitUntil(() => (workers = childrenOf(sup)).length > 0 || !alive(sup), 8_000);
      return workers;
    };

    const killWorker = async (): Promise<void> => {
      const sup = h.daemonPid()!;
      const workers = await workerOf(sup);
      note(`kill -9 worker ${workers.join(',')}`);
      for (const w of workers) {
        try {
          process.kill(w, 'SIGKILL');
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err; // it died meanwhile
        }
      }
      if (registry !== 'up') registryFaultAtWorkerKill = iteration;
      count('kill worker', workers.length === 0, 'the supervisor had no worker for 8 s');
    };

    const killSupervisor = async (): Promise<void> => {
      const sup = h.daemonPid()!;
      const workers = childrenOf(sup);
      process.kill(sup, 'SIGKILL');
      note(`kill -9 supervisor ${sup}`);
      // The worker goes with its supervisor (it must not serve on, or hold the cache lock).
      const gone = await waitUntil(() => !alive(sup) && workers.every((w) => !alive(w)), 10_000);
      count('kill supervisor', !gone, `worker ${workers.join(',')} still alive 10 s after its supervisor was killed`);
      for (const m of live) if (m.supervisorPid === sup) m.dead = true;
    };

    const registryAction = async (what: 'hang' | 'resume' | 'down' | 'up' | 'restart'): Promise<void> => {
      note(`registry ${what}`);
      lastRegistryFault = iteration;
      if (what === 'hang') reg.signal('SIGSTOP');
      else if (what === 'resume') reg.signal('SIGCONT');
      else if (what === 'down') await reg.down();
      else if (what === 'up') await reg.up();
      else await reg.restart();
      registry = what === 'hang' ? 'hung' : what === 'down' ? 'down' : 'up';
      count(`registry ${what}`);
    };

    const moveTag = async (): Promise<void> => {
      const tag = rnd.pick([...movingTags.keys()]);
      const from = movingTags.get(tag)!;
      const to = (from + 1 + rnd.int(IMAGE_COUNT - 1)) % IMAGE_COUNT;
      const r = await h.cli('push', `oci:${images[to]!.layout}:img${to}`, `${repo}:${tag}`);
      note(`move tag ${tag} from image ${from} to ${to} → ${r.code === 0 ? 'ok' : 'failed'}`);
      if (r.code === 0) movingTags.set(tag, to);
      count('move tag', r.code !== 0, r.stderr.trim());
    };

    const evict = async (): Promise<void> => {
      const sup = h.daemonPid();
      if (sup !== null) {
        // The daemon owns the cache: gc asks it to evict everything not in use (the blobs of its mounts
        // are pinned, so their reads stay right). First wait until a worker answers.
        await h.cli('status');
        const r = await h.cli('cache', 'gc', '--max-size', '0');
        note(`cache gc through the daemon → ${r.code === 0 ? r.stdout.trim() : `exit ${r.code}: ${r.stderr.trim()}`}`);
        // A daemon that a fault ended meanwhile (a zombie still answers kill 0) may fail the request.
        if (h.daemonPid() === sup && alive(sup)) count('gc (daemon)', r.code !== 0, `exit ${r.code}: ${r.stderr.trim()}`);
        else note('the daemon ended during cache gc: its answer not checked');
        return;
      }
      const r = await h.cli('cache', 'gc', '--max-size', rnd.pick(['0', '1M', '3M']));
      note(`cache gc → ${r.stdout.trim() || r.stderr.trim()}`);
      count('gc (no daemon)', r.code !== 0, r.stderr.trim());
    };

    /**
     * `cache verify`, through the daemon when one runs (blobs of live mounts are checked in place),
     * with a round of reads beside it: a check in place must never hand them wrong bytes or zeros.
     * Exit 1 (bad frames found, e.g. after tampering) is an answer too; anything above is a failure.
     */
    const verify = async (): Promise<void> => {
      const sup = h.daemonPid();
      if (sup !== null) await h.cli('status');
      const [r] = await Promise.all([h.cli('cache', 'verify'), roundOfReads(2, 0.3)]);
      note(`cache verify${sup !== null ? ' through the daemon' : ''} → exit ${r.code}: ${r.stdout.trim().split('\n').at(-1) ?? ''}${r.code > 1 ? ` ${r.stderr.trim()}` : ''}`);
      if (sup !== null && !(h.daemonPid() === sup && alive(sup))) {
        note('the daemon ended during cache verify: its answer not checked');
        return;
      }
      count(sup !== null ? 'verify (daemon)' : 'verify (no daemon)', r.code > 1, `exit ${r.code}: ${r.stderr.trim()}`);
    };

    const dropCaches = async (): Promise<void> => {
      writeFileSync('/proc/sys/vm/drop_caches', '3');
      note('drop page cache');
      count('drop page cache');
    };

    /** An image whose cache files to tamper with: mostly a mounted one. */
    const tamperTarget = (): number => (live.length > 0 && rnd.chance(0.7) ? rnd.pick(live).image : rnd.int(IMAGE_COUNT));
    const markTampered = (image: number, kind: string): void => {
      const t = tampered.get(image) ?? { kinds: new Set<string>(), last: iteration };
      t.kinds.add(kind);
      t.last = iteration;
      tampered.set(image, t);
    };

    /**
     * After a supervisor was killed its fanotify marks stay (a holder keeps the group, so readers of
     * its dead mounts never see zeros) until the next daemon cleans up; meanwhile the holder answers
     * every read of a marked cache file EIO, tampering included. That refusal is counted, not a failure.
     */
    const tamper = async (kind: 'corrupt' | 'truncate' | 'delete' | 'delete bootstrap'): Promise<void> => {
      try {
        await tamperOnce(kind);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EIO') throw err;
        note(`tamper ${kind}: refused with EIO (fanotify marks of a killed daemon)`);
        count(`tamper ${kind} (EIO: marks of a killed daemon)`);
      }
    };
    const tamperOnce = async (kind: 'corrupt' | 'truncate' | 'delete' | 'delete bootstrap'): Promise<void> => {
      const image = tamperTarget();
      const blobId = images[image]!.blobIds[0]!;
      const data = join(h.cacheDir, 'blobs', `${blobId}.data`);
      const map = join(h.cacheDir, 'blobs', `${blobId}.map`);
      let what = 'nothing there';
      if (kind === 'corrupt') {
        const p = presentFrames(map);
        if (p.frames.length > 0 && existsSync(data)) {
          const frame = rnd.pick(p.frames);
          const start = frame * p.frameSize;
          const length = Math.min(p.frameSize, p.size - start);
          const fd = openSync(data, 'r+');
          try {
            const flips = 1 + rnd.int(16);
            for (let k = 0; k < flips; k++) {
              const at = start + rnd.int(length);
              const b = Buffer.alloc(1);
              readSync(fd, b, 0, 1, at);
              b[0] = b[0]! ^ (1 + rnd.int(255));
              writeSync(fd, b, 0, 1, at);
            }
            what = `flipped ${flips} bytes in present frame ${frame}`;
          } finally {
            closeSync(fd);
          }
        }
      } else if (kind === 'truncate') {
        if (existsSync(data)) {
          const size = statSync(data).size;
          const to = rnd.chance(0.3) ? 0 : rnd.int(size);
          truncateSync(data, to);
          what = `data truncated from ${size} to ${to}`;
        }
      } else if (kind === 'delete') {
        const victims = rnd.pick([[data], [map], [data, map]]).filter((f) => existsSync(f));
        for (const f of victims) rmSync(f, { force: true });
        if (victims.length > 0) what = `deleted ${victims.map((f) => f.slice(f.lastIndexOf('.'))).join(' and ')}`;
      } else {
        const bootstrap = join(h.cacheDir, 'bootstraps', images[image]!.bootstrapHex);
        if (existsSync(bootstrap)) {
          rmSync(bootstrap, { force: true });
          what = 'deleted the bootstrap';
        }
      }
      note(`tamper ${kind} image ${image}: ${what}`);
      if (what !== 'nothing there') markTampered(image, kind);
      count(`tamper ${kind}${what === 'nothing there' ? ' (nothing there)' : ''}`);
    };

    /** The actions possible now, with their weights. */
    const choices = (): [number, () => Promise<void>][] => {
      const daemon = h.daemonPid() !== null;
      const dead = live.some((m) => m.dead);
      const list: [number, () => Promise<void>][] = [
        [14, () => roundOfReads(3, 0.5).then(() => count('extra reads'))],
        [6, dropCaches],
        [5, evict],
        [3, verify],
      ];
      // Mostly two or three mounts live: that is where reads meet faults.
      if (live.length < MAX_MOUNTS && registry !== 'hung') list.push([live.length < 2 ? 30 : 10, mount]);
      if (live.length > 0) list.push([dead ? 25 : 6, umount]);
      if (daemon && !dead) list.push([8, killWorker], [2, killSupervisor]);
      if (registry === 'up') list.push([3, () => registryAction('hang')], [2, () => registryAction('down')], [3, () => registryAction('restart')], [6, moveTag]);
      if (registry === 'hung') list.push([40, () => registryAction('resume')]);
      if (registry === 'down') list.push([30, () => registryAction('up')]);
      // Offline tampering has only the short spells without a daemon: weigh it up there.
      const w = TAMPER_MODE === 'live' ? 1 : TAMPER_MODE === 'offline' && !daemon ? 6 : 0;
      if (w > 0) list.push([4 * w, () => tamper('corrupt')], [2 * w, () => tamper('truncate')], [2 * w, () => tamper('delete')], [w, () => tamper('delete bootstrap')]);
      return list;
    };

    const pickAction = (): (() => Promise<void>) => {
      const list = choices();
      let x = rnd.next() * list.reduce((s, [w]) => s + w, 0);
      for (const [w, act] of list) {
        x -= w;
        if (x < 0) return act;
      }
      return list.at(-1)![1];
    };

    // ---- the campaign ---------------------------------------------------------------------------
    process.stderr.write(`campaign: seed ${SEED} (CAMPAIGN_SEED=${SEED} replays), cache tampering ${TAMPER_MODE}, modes ${MODES.join(',')}, ${ITERATIONS} iterations, budget ${BUDGET_MS / 1000} s\n`);
    let budgetEnded = false;
    for (iteration = 0; iteration < ITERATIONS; iteration++) {
      if (Date.now() - started > BUDGET_MS) {
        budgetEnded = true;
        break;
      }
      await pickAction()();
      noteFuseDevices();
      await roundOfReads(2, 0.3);
    }
    const ran = iteration;
    const seconds = Math.round((Date.now() - started) / 1000);

    // ---- cleanup: every mount unmade through the CLI, the daemon stopped, then nothing may remain --
    // (`as`: TypeScript does not see the actions above change it.)
    if ((registry as RegistryState) === 'hung') await registryAction('resume');
    if ((registry as RegistryState) === 'down') await registryAction('up');
    while (live.length > 0) await umount();
    const sup = h.daemonPid();
    if (sup !== null) {
      const workers = childrenOf(sup);
      process.kill(sup, 'SIGTERM');
      if (!(await waitUntil(() => !alive(sup) && workers.every((w) => !alive(w)), 30_000))) actionFailures.push(`final: daemon ${sup} did not stop on SIGTERM`);
    }
    if (process.env.CAMPAIGN_LOG) {
      writeFileSync(process.env.CAMPAIGN_LOG, [...history, ...failures.map((f) => `FAILED READ ${JSON.stringify({ ...f, recent: undefined })}`)].join('\n') + '\n');
    }
    for (const m of leftovers(h, [mntRoot]).mounts) leakedMounts.add(`${m} (after final cleanup)`);
    for (const l of loopsLeft()) leakedLoops.add(`${l} (after final cleanup)`);

    // ---- report ------------------------------------------------------------------------------
    const daemonLog = existsSync(join(h.runDir, 'daemon.log')) ? readFileSync(join(h.runDir, 'daemon.log'), 'utf8') : '';
    const daemonEvictions = daemonLog.split('\n').filter((l) => l.includes('evicted blob from cache')).length;
    const actionText = [...actions].sort(([a], [b]) => a.localeCompare(b)).map(([n, a]) => `${n} ${a.done}${a.failed ? ` (${a.failed} failed)` : ''}`).join(', ');
    const lines = [
      `campaign: seed ${SEED}, tamper ${TAMPER_MODE}, ${ran} iterations in ${seconds} s: reads ${reads.right} right, ${reads.error} errors, ` +
        `${reads.wrong} wrong, ${reads['zero-filled']} zero-filled, ${reads.hung} hung; ${leakedMounts.size} leaked mounts, ${leakedLoops.size} leaked loops; ` +
        `daemon evictions ${daemonEvictions}; actions: ${actionText}`,
      `  errors by first suspected cause: ${[...errorsBySuspect].sort((a, b) => b[1] - a[1]).map(([s, n]) => `${s} ${n}`).join('; ') || 'none'}`,
      `  error codes: ${[...errorCodes].map(([c, n]) => `${c} ${n}`).join(', ') || 'none'}`,
      `  mounts torn down by the daemon itself: ${tornDown.length}`,
      ...tornDown.slice(0, 6).map((t) => `    ${t}`),
    ];
    const bySuspect = new Map<string, number>();
    for (const f of failures) {
      const key = `${f.outcome} ← ${f.suspect.split(' + ')[0]!.replace(/, last #\d+/, '')}`;
      bySuspect.set(key, (bySuspect.get(key) ?? 0) + 1);
    }
    if (failures.length > 0) lines.push(`  wrong/zero-filled/hung reads by suspected cause: ${[...bySuspect].map(([s, n]) => `${s}: ${n}`).join('; ')}`);
    // Failures tampering cannot explain first: they are the news.
    const shown = [...failures].sort((a, b) => Number(a.suspect.startsWith('cache tamper')) - Number(b.suspect.startsWith('cache tamper')));
    for (const f of shown.slice(0, 12)) {
      lines.push(`  ${f.outcome} at #${f.iteration}: ${f.file} on ${f.mount}: ${f.detail}; suspect ${f.suspect}`, `    recent actions: ${f.recent.join(' | ')}`);
    }
    for (const a of actionFailures.slice(0, 12)) lines.push(`  action failed: ${a}`);
    for (const l of [...leakedMounts, ...leakedLoops]) lines.push(`  leaked: ${l}`);
    process.stderr.write(lines.join('\n') + '\n');

    expect({ wrong: reads.wrong, zeroFilled: reads['zero-filled'], hung: reads.hung, leakedMounts: [...leakedMounts], leakedLoops: [...leakedLoops] })
      .toEqual({ wrong: 0, zeroFilled: 0, hung: 0, leakedMounts: [], leakedLoops: [] });
    expect(actionFailures).toEqual([]);
    if (budgetEnded) throw new Error(`the time budget (${BUDGET_MS / 1000} s) ended the campaign after ${ran} of ${ITERATIONS} iterations`);
    expect(ran).toBe(ITERATIONS);
  }, BUDGET_MS + 300_000);
});
