/**
 * Issue 14 through the real CLI and daemon: the fanotify transport (erofs file-backed on the blobs'
 * sparse cache data files, filled on FAN_PRE_ACCESS events).
 * - Must-show 1: `--mode auto` picks fanotify here; the Debian minbase image from the test registry
 *   mounts, `dpkg -l` runs in a chroot, the tree equals its source (content, modes, owners, links,
 *   xattrs), the bytes `/bin/true` fetched are printed; the same image through fuse-blobs on the same
 *   cache then fetches 0 bytes for a whole-tree read, and the other way round on a second cache.
 * - Must-show 3: an image of 64 blobs (64 layers, `ondemand convert`) mounts and reads right; its
 *   daemon then stops at once on SIGTERM, worker and group holder included.
 * - Must-show 2's registry part, under fanotify explicitly: with the registry hung or stopped, a read
 *   of data not cached fails with EIO within the fetch deadline, and nothing read is ever zeros.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { haveCommand, isRoot, makeTempDir, needs } from '../helpers/env.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { makeDebianTree } from '../helpers/trees.js';
import { compareTrees } from '../helpers/tree-compare.js';
import { gzLayer, makeSourceLayout } from '../convert/layout-maker.js';
import { makeTar } from '../convert/tar-maker.js';
import {
  alive, cliBuilt, detectHere, erofsMount, leftovers, listFiles, makeHarness, readCheck, waitUntil, type Harness, type ReadRequest,
} from './harness.js';
import { buildImage, cliHas, makeTree, mountStatus, pushLayout, type TestImage } from './images.js';

const report = detectHere();
const fanotifyOk = report?.features.fanotifyPreContent?.supported === true && report.features.erofsFileBacked?.supported === true;
const host: [boolean, string][] = [[isRoot, 'root'], [cliBuilt(), 'a current build (make build)'],
  [fanotifyOk, `fanotify pre-content events over file-backed erofs (${report?.features.fanotifyPreContent?.reason ?? 'not probed'})`]];
const withRegistry: [boolean, string][] = [...host, [cliHas('build'), 'ondemand build'], [cliHas('push'), 'ondemand push'],
  [haveCommand('docker-registry'), 'docker-registry']];

/** mount(2) copies one page of option data (transport/fanotify/transport.ts). */
const MOUNT_DATA_MAX = 4095;

/** The `device=` options of a fanotify mount of `blobs` blobs by a daemon on `runDir`. */
function deviceOptions(runDir: string, blobs: number): string {
  const privateDir = join(runDir, 'fuse', 'x'.repeat(12));
  return Array.from({ length: blobs }, (_, i) => `device=${join(privateDir, String(i + 1))}`).join(',');
}

/** Every regular file of `tree` as a whole-file read of `mnt` checked against its source. */
function wholeFileReads(tree: string, mnt: string, only: (rel: string) => boolean = () => true): ReadRequest[] {
  return listFiles(tree).filter(only).map((rel, id) => ({ id, path: join(mnt, rel), source: join(tree, rel), ranges: null }));
}

const dpkgCount = (root: string): string => execFileSync('chroot', [root, '/bin/sh', '-c', 'dpkg -l | wc -l'], { encoding: 'utf8' }).trim();

describe.skipIf(!needs('fanotify: Debian minbase from a registry', ...withRegistry))('fanotify: Debian minbase from a registry', () => {
  let reg: TestRegistry;
  let builder: Harness;
  const harnesses: Harness[] = [];
  let src: { dir: string; remove: () => void };
  let tree: string;
  let image: TestImage;
  let remote: string;
  let treeProblem: string | undefined;

  beforeAll(async () => {
    builder = makeHarness('fan-deb-build');
    src = makeTempDir('fan-deb-src');
    tree = join(src.dir, 'tree');
    treeProblem = makeDebianTree(tree);
    if (treeProblem) return;
    reg = await startRegistry();
    image = await buildImage(builder, tree, join(src.dir, 'layout'), 'min');
    remote = `${reg.host}/debian:min`;
    await pushLayout(builder, image.ref, remote);
  }, 1_200_000);
  afterAll(async () => {
    for (const h of [...harnesses, builder]) await h?.cleanup();
    await reg?.stop();
    src?.remove();
  });

  const fresh = (name: string): Harness => {
    const h = makeHarness(name);
    harnesses.push(h);
    return h;
  };
  const skipWithoutTree = (ctx: { skip: (note?: string) => void }): void => {
    if (!treeProblem) return;
    needs('fanotify: Debian minbase from a registry', [false, treeProblem]);
    ctx.skip(treeProblem);
  };

  /** Mounts `remote` at a new mountpoint of `h` in `mode`, checks the mode status reports and returns the mountpoint. */
  async function mountAs(h: Harness, mode: 'auto' | 'fuse-blobs', expected: 'fanotify' | 'fuse-blobs', label: string): Promise<string> {
    const mp = h.mountpoint(label);
    await h.ok('mount', '--insecure', '--mode', mode, '--image', remote, mp);
    expect((await mountStatus(h, mp)).mode).toBe(expected);
    if (expected === 'fanotify') {
      // File-backed: erofs reads the bootstrap file itself, never through a loop device (it bypasses the hook).
      const erofs = erofsMount(mp);
      expect(erofs).toBeDefined();
      expect(erofs!.source).not.toMatch(/^\/dev\/loop/);
    }
    return mp;
  }

  /** A whole-tree read (every entry's type, mode, owner, links, xattrs and content) equal to the source; the bytes it fetched. */
  async function wholeTreeEqual(h: Harness, mp: string): Promise<number> {
    const before = (await mountStatus(h, mp)).bytesFetched;
    expect(compareTrees(tree, mp)).toEqual([]);
    return (await mountStatus(h, mp)).bytesFetched - before;
  }

  it('auto picks fanotify: dpkg runs, the tree equals its source, /bin/true fetches a fraction; fuse-blobs on that cache then fetches 0', async (ctx) => {
    skipWithoutTree(ctx);
    expect(report!.mode).toBe('fanotify');
    const h = fresh('fan-deb-a');
    const mp = await mountAs(h, 'auto', 'fanotify', 'fan');
    execFileSync('chroot', [mp, '/bin/true']);
    const trueBytes = (await mountStatus(h, mp)).bytesFetched;
    process.stderr.write(`fanotify: chroot /bin/true on a fresh cache fetched ${trueBytes} bytes of a ${image.bytes}-byte image (${((100 * trueBytes) / image.bytes).toFixed(2)} %)\n`);
    expect(trueBytes).toBeGreaterThan(0);
    expect(trueBytes).toBeLessThan(image.bytes / 10);
    const count = dpkgCount(mp);
    expect(Number(count)).toBeGreaterThan(50);
    expect(count).toBe(dpkgCount(tree));
    const rest = await wholeTreeEqual(h, mp);
    process.stderr.write(`fanotify: whole-tree read fetched ${rest} more bytes (${trueBytes + rest} in all)\n`);
    await h.ok('umount', mp);
    expect(leftovers(h, [mp])).toEqual({ mounts: [], loops: [] });

    const mp2 = await mountAs(h, 'fuse-blobs', 'fuse-blobs', 'fuse');
    const again = await wholeTreeEqual(h, mp2);
    process.stderr.write(`fuse-blobs after fanotify on the same cache: whole-tree read fetched ${again} bytes\n`);
    expect(again).toBe(0);
    await h.ok('umount', mp2);
    expect(leftovers(h, [mp2])).toEqual({ mounts: [], loops: [] });
  }, 600_000);

  it('the other way round: fuse-blobs reads the whole tree first, then fanotify on that cache fetches 0', async (ctx) => {
    skipWithoutTree(ctx);
    const h = fresh('fan-deb-b');
    const mp = await mountAs(h, 'fuse-blobs', 'fuse-blobs', 'fuse');
    const first = await wholeTreeEqual(h, mp);
    process.stderr.write(`fuse-blobs first: whole-tree read fetched ${first} bytes\n`);
    expect(first).toBeGreaterThan(0);
    await h.ok('umount', mp);

    const mp2 = await mountAs(h, 'auto', 'fanotify', 'fan');
    execFileSync('chroot', [mp2, '/bin/true']);
    expect(dpkgCount(mp2)).toBe(dpkgCount(tree));
    const again = await wholeTreeEqual(h, mp2);
    const total = (await mountStatus(h, mp2)).bytesFetched;
    process.stderr.write(`fanotify after fuse-blobs on the same cache: /bin/true, dpkg -l and a whole-tree read fetched ${total} bytes\n`);
    expect(again).toBe(0);
    expect(total).toBe(0);
    await h.ok('umount', mp2);
    expect(leftovers(h, [mp2])).toEqual({ mounts: [], loops: [] });
  }, 600_000);
});

const BLOBS = 64;

describe.skipIf(!needs('fanotify: an image of 64 blobs', ...host, [cliHas('convert'), 'ondemand convert']))('fanotify: an image of 64 blobs', () => {
  let h: Harness;
  let work: { dir: string; remove: () => void };
  let tree: string;
  let ref: string;

  beforeAll(async () => {
    h = makeHarness('fan64');
    work = makeTempDir('fan64-src');
    tree = join(work.dir, 'tree');
    // One layer per blob, each with files of its own (a layer with nothing new would make no blob).
    const layers = [];
    for (let i = 0; i < BLOBS; i++) {
      const dir = `layer-${String(i).padStart(2, '0')}`;
      const files: [string, Buffer][] = [[`${dir}/small`, Buffer.from(`layer ${i}\n`)], [`${dir}/data.bin`, randomBytes(64 * 1024 + i * 4099)]];
      if (i % 16 === 5) files.push([`${dir}/big.bin`, randomBytes(3 * 1024 * 1024 + i)]);
      mkdirSync(join(tree, dir), { recursive: true });
      for (const [name, bytes] of files) writeFileSync(join(tree, name), bytes);
      layers.push(gzLayer(makeTar([{ name: `${dir}/`, type: '5' }, ...files.map(([name, data]) => ({ name, data }))])));
    }
    await makeSourceLayout(join(work.dir, 'source'), 'src', layers);
    ref = `oci:${join(work.dir, 'converted')}:img`;
    await h.ok('convert', `oci:${join(work.dir, 'source')}:src`, ref);
  }, 300_000);
  afterAll(async () => {
    await h?.cleanup();
    work?.remove();
  });

  it('mounts with one device= per blob within one page of mount data, and every file reads right', async () => {
    const info = JSON.parse(await h.ok('inspect', '--json', ref)) as { blobs: unknown[] };
    expect(info.blobs).toHaveLength(BLOBS);
    const mp = h.mountpoint('m64');
    await h.ok('mount', '--mode', 'fanotify', '--image', ref, mp);
    expect((await mountStatus(h, mp)).mode).toBe('fanotify');
    // The device= links are made in <run dir>/fuse/<12-hex mount id>/<n> (transport/fanotify/transport.ts).
    const data = deviceOptions(h.runDir, BLOBS);
    const most = (runDir: string): number => {
      let n = 1;
      while (deviceOptions(runDir, n + 1).length <= MOUNT_DATA_MAX) n += 1;
      return n;
    };
    process.stderr.write(`${BLOBS} blobs: the device= options took ${data.length} of ${MOUNT_DATA_MAX} bytes (run dir of ${h.runDir.length} characters; ` +
      `at most ${most(h.runDir)} blobs fit with it, ${most('/run/ondemand')} with the default /run/ondemand)\n`);
    expect(data.length).toBeLessThanOrEqual(MOUNT_DATA_MAX);
    const results = await readCheck(wholeFileReads(tree, mp), 120_000);
    const bad = results.filter((r) => r.outcome !== 'right');
    process.stderr.write(`${BLOBS} blobs: ${results.length - bad.length} of ${results.length} files read right; ${(await mountStatus(h, mp)).bytesFetched} bytes fetched\n`);
    expect(bad).toEqual([]);
    expect(compareTrees(tree, mp, { mtime: false, root: false })).toEqual([]);
    await h.ok('umount', mp);
    expect(leftovers(h, [mp])).toEqual({ mounts: [], loops: [] });

    // A clean stop ends the worker (its event thread must not keep it alive) and the group holder, at
    // once: the worker's stop grace (20 s) is not waited out.
    const supervisor = h.daemonPid()!;
    const worker = (JSON.parse(await h.ok('status', '--json')) as { daemon: { workerPid: number } }).daemon.workerPid;
    const holder = Number(readFileSync(join(h.runDir, 'fanotify-holder.pid'), 'utf8').trim());
    process.kill(supervisor, 'SIGTERM');
    expect(await waitUntil(() => ![supervisor, worker, holder].some(alive), 15_000)).toBe(true);
    expect(existsSync(join(h.runDir, 'fanotify-holder.pid'))).toBe(false);
  }, 300_000);
});

const FETCH_TIMEOUT_S = 6;

describe.skipIf(!needs('fanotify: registry hung or stopped', ...withRegistry))('fanotify: registry hung or stopped', () => {
  let h: Harness;
  let reg: TestRegistry;
  let src: { dir: string; remove: () => void };
  let tree: string;
  let mp: string;

  beforeAll(async () => {
    h = makeHarness('fan-reg', { ONDEMAND_FETCH_TIMEOUT: String(FETCH_TIMEOUT_S) });
    src = makeTempDir('fan-reg-src');
    tree = join(src.dir, 'tree');
    reg = await startRegistry();
    makeTree(tree, { seed: 'fan-reg', bulkBytes: 40 * 1024 * 1024 });
    // Small frames: one page-cache read-ahead window spans many of them (each an event of its own).
    const image = await buildImage(h, tree, join(src.dir, 'layout'), 'test', ['--frame-size', '65536', '--chunk-size', '65536']);
    await pushLayout(h, image.ref, `${reg.host}/fan/reg:latest`);
    mp = h.mountpoint('reg');
    await h.ok('mount', '--insecure', '--mode', 'fanotify', '--image', `${reg.host}/fan/reg:latest`, mp);
    expect((await mountStatus(h, mp)).mode).toBe('fanotify');
  });
  afterAll(async () => {
    await h?.cleanup();
    await reg?.stop();
    src?.remove();
  });

  /** Reads `rel` through the mount (in a child); what it got and how long it took. */
  async function readOne(rel: string): Promise<{ outcome: string; code?: string; detail?: string; ms: number }> {
    const t0 = Date.now();
    const [r] = await readCheck([{ id: 0, path: join(mp, rel), source: join(tree, rel), ranges: null }], 120_000);
    return { ...r!, ms: Date.now() - t0 };
  }

  it('hung (SIGSTOP): a read of data not cached fails with EIO within the fetch deadline; the same read works once it is back', async () => {
    expect((await readOne('data/medium.bin')).outcome).toBe('right');
    reg.signal('SIGSTOP');
    let r: Awaited<ReturnType<typeof readOne>>;
    try {
      r = await readOne('data/one-mib-plus-one.bin');
    } finally {
      reg.signal('SIGCONT');
    }
    process.stderr.write(`fanotify, registry hung: ${r.outcome} ${r.code ?? ''} after ${r.ms} ms (deadline ${FETCH_TIMEOUT_S} s)\n`);
    expect(r).toMatchObject({ outcome: 'error', code: 'EIO' });
    expect(r.ms).toBeLessThan((FETCH_TIMEOUT_S + 10) * 1000);
    expect((await mountStatus(h, mp)).failedReads).toBeGreaterThan(0);
    const logged = readFileSync(join(h.runDir, 'daemon.log'), 'utf8').split('\n').filter((l) => l.includes('read failed: answering the kernel EIO'));
    expect(logged.length).toBeGreaterThan(0);
    expect((await readOne('data/one-mib-plus-one.bin')).outcome).toBe('right');
  });

  it('hung mid-file: a read that runs from cached data into data not cached fails within about one fetch deadline', async () => {
    const rel = join('data', 'bulk.bin');
    // The start of the file cached (and what the cache reads ahead of it): the whole-file read below
    // gets that, then runs into frames not cached.
    const [head] = await readCheck([{ id: 0, path: join(mp, rel), source: join(tree, rel), ranges: [[0, 600 * 1024]] }], 120_000);
    expect(head!.outcome).toBe('right');
    reg.signal('SIGSTOP');
    let r: Awaited<ReturnType<typeof readOne>>;
    try {
      r = await readOne(rel);
    } finally {
      reg.signal('SIGCONT');
    }
    process.stderr.write(`fanotify, registry hung mid-file: ${r.outcome} ${r.code ?? ''} after ${r.ms} ms (deadline ${FETCH_TIMEOUT_S} s)\n`);
    expect(r).toMatchObject({ outcome: 'error', code: 'EIO' });
    // Not one deadline per page of the kernel's read-ahead window (each page's event waited for its own).
    expect(r.ms).toBeLessThan((2 * FETCH_TIMEOUT_S + 4) * 1000);
  });

  it('stopped: cached data still reads; data not cached fails with EIO (never zeros, never a hang)', async () => {
    await reg.down();
    expect((await readOne('data/medium.bin')).outcome).toBe('right');
    const r = await readOne('data/bulk.bin');
    process.stderr.write(`fanotify, registry down: ${r.outcome} ${r.code ?? ''} ${r.detail ?? ''} after ${r.ms} ms\n`);
    expect(r).toMatchObject({ outcome: 'error', code: 'EIO' });
    expect(r.ms).toBeLessThan((FETCH_TIMEOUT_S + 10) * 1000);
    // Nothing wrong was kept: with the registry back the file reads right.
    await reg.up();
    expect((await readOne('data/bulk.bin')).outcome).toBe('right');
    await h.ok('umount', mp);
    expect(leftovers(h, [mp])).toEqual({ mounts: [], loops: [] });
  });
});
