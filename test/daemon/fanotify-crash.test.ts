/**
 * Issue 14 must-show 2 through the real CLI and daemon, fanotify transport. The kernel answers every
 * pending event FAN_ALLOW when a group's last fd closes, and readers then see holes as zeros; so:
 * - the worker SIGKILLed again and again during a cold whole-tree read: the supervisor still holds
 *   the group, each new worker answers the events its predecessor left (journal) before new ones, and
 *   every file reads right (no zeros, no error);
 * - the supervisor SIGKILLed during a cold read: the holder process keeps the group, readers wait
 *   (never zeros; errors allowed), the next `ondemand mount` (a new daemon on the same run dir)
 *   adopts the group and cleans up the dead daemon's mount; files still open through that detached
 *   mount never read as zeros, neither after the new daemon's mount of the same blobs is gone nor
 *   after the new daemon stopped (then the holder stays, so they wait). The test ends the holder.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { haveCommand, isRoot, makeTempDir, needs } from '../helpers/env.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import {
  alive, cliBuilt, detectHere, isFanotifyHolder, leftovers, listFiles, makeHarness, readCheck, waitUntil, type Harness, type ReadRequest,
  type ReadResult,
} from '../mount/harness.js';
import { buildImage, cliHas, mountStatus, pushLayout } from '../mount/images.js';

const report = detectHere();
const ready = needs('fanotify crash safety', [isRoot, 'root'], [cliBuilt(), 'a current build (make build)'],
  [report?.features.fanotifyPreContent?.supported === true, `fanotify pre-content events (${report?.features.fanotifyPreContent?.reason ?? 'not probed'})`],
  [cliHas('build'), 'ondemand build'], [cliHas('push'), 'ondemand push'], [haveCommand('docker-registry'), 'docker-registry']);

const MIB = 1024 * 1024;
/** Small uncompressed frames and no cache read-ahead: a cold read is many fetches, many events. */
const BUILD_ARGS = ['--compression', 'none', '--frame-size', String(64 * 1024)];
const DAEMON_ENV = { ONDEMAND_CACHE_READ_AHEAD_FRAMES: '0' };
const READ_DEADLINE_MS = 120_000;
const MAX_WORKER_KILLS = 8;

interface StatusJson { daemon: { pid: number; workerPid: number; workerRestarts: number } | null; mounts: { mountpoint: string; mode: string }[] }

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The pid of a worker that answers `status` and is not `not` (waits out a restart in progress). */
async function liveWorker(h: Harness, not = 0): Promise<number> {
  for (const end = Date.now() + 60_000; Date.now() < end; await sleep(50)) {
    const r = await h.cli('status', '--json');
    if (r.code !== 0) continue;
    const pid = (JSON.parse(r.stdout) as StatusJson).daemon?.workerPid;
    if (pid !== undefined && pid !== not) return pid;
  }
  throw new Error(`no worker (other than ${not}) answered status within 60 s`);
}

function tally(results: ReadResult[]): Record<string, number> {
  const t: Record<string, number> = {};
  for (const r of results) t[r.outcome] = (t[r.outcome] ?? 0) + 1;
  return t;
}

/**
 * From the daemon log: worker restarts, the 'answered fanotify events left by the previous worker' lines
 * summed (answered = allowed after the fill, or denied EIO), events the dead worker had read and not
 * journaled (found in its last read's batch, filled in every served file; those of its own I/O answered at
 * once), events denied because nothing
 * at all was known of them, and events denied for a file no mount serves.
 */
function recoveries(h: Harness): { restarts: number; recovered: number; unjournaled: number; readerGone: number; deniedUnknown: number; unserved: number } {
  const out = { restarts: 0, recovered: 0, unjournaled: 0, readerGone: 0, deniedUnknown: 0, unserved: 0 };
  const log = join(h.runDir, 'daemon.log');
  if (!existsSync(log)) return out;
  for (const line of readFileSync(log, 'utf8').split('\n')) {
    if (line.includes('"msg":"worker died; restarting it"')) out.restarts += 1;
    if (line.includes('fanotify event on a file no mount serves')) out.unserved += 1;
    if (!line.includes('fanotify events left by the previous worker') && !line.includes('had not journaled')) continue;
    const j = JSON.parse(line) as { recovered?: number; unjournaled?: number; readerGone?: number; deniedUnknown?: number };
    if (line.includes('answered fanotify events left by the previous worker')) out.recovered += j.recovered ?? 0;
    out.unjournaled += j.unjournaled ?? 0;
    out.readerGone += j.readerGone ?? 0;
    out.deniedUnknown += j.deniedUnknown ?? 0;
  }
  return out;
}

interface ParkedResult { outcome: string; code?: string; detail?: string }

/**
 * A process that opens `path` now and reads it whole (compared with `source`) when told to, printing
 * { outcome, code?, detail? } like read-check.mjs; `hung` when it has not answered within `deadlineMs`
 * (then it is killed).
 */
function parkedReader(path: string, source: string): { opened: Promise<void>; result: (deadlineMs: number) => Promise<ParkedResult> } {
  const script = `
const fs = require('node:fs');
const [path, source] = process.argv.slice(1);
const fd = fs.openSync(path, 'r');
process.stdout.write('open\\n');
process.stdin.once('data', () => {
  const want = fs.readFileSync(source);
  const got = Buffer.alloc(want.length + 1);
  let n = 0;
  try {
    for (let r; n < got.length && (r = fs.readSync(fd, got, n, Math.min(1 << 20, got.length - n), n)) > 0;) n += r;
  } catch (err) {
    process.stdout.write(JSON.stringify({ outcome: 'error', code: err.code, detail: 'after ' + n + ' bytes' }) + '\\n');
    process.exit(0);
  }
  let first = -1, zero = true;
  for (let i = 0; i < Math.max(n, want.length); i++) {
    if (i < n && i < want.length && got[i] === want[i]) continue;
    if (first < 0) first = i;
    if (i >= n || got[i] !== 0) { zero = false; break; }
  }
  const outcome = first < 0 ? 'right' : zero ? 'zero-filled' : 'wrong';
  process.stdout.write(JSON.stringify({ outcome, detail: first < 0 ? n + ' bytes' : 'first difference at ' + first + ' of ' + n }) + '\\n');
  process.exit(0);
});`;
  const child = spawn(process.execPath, ['-e', script, path, source], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  const waiting: ((line: string) => void)[] = [];
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
    for (let i = out.indexOf('\n'); i >= 0; i = out.indexOf('\n')) {
      const line = out.slice(0, i);
      out = out.slice(i + 1);
      waiting.shift()?.(line);
    }
  });
  const next = (): Promise<string> => new Promise((resolve) => waiting.push(resolve));
  return {
    opened: next().then(() => undefined),
    result: async (deadlineMs) => {
      const line = next();
      child.stdin!.write('go\n');
      const timer = sleep(deadlineMs).then(() => null);
      const got = await Promise.race([line, timer]);
      if (got === null) {
        child.kill('SIGKILL');
        return { outcome: 'hung', detail: `no answer within ${deadlineMs} ms` };
      }
      return JSON.parse(got) as ParkedResult;
    },
  };
}

describe.skipIf(!ready)('fanotify: no zeros when a daemon process dies', () => {
  let reg: TestRegistry;
  let builder: Harness;
  let src: { dir: string; remove: () => void };
  let tree: string;
  let remote: string;
  let totalBytes = 0;
  const harnesses: Harness[] = [];
  const holders = new Set<number>();

  beforeAll(async () => {
    builder = makeHarness('fancrash-build');
    src = makeTempDir('fancrash-src');
    tree = join(src.dir, 'tree');
    // ~280 MiB of random data in files of 1 to 16 MiB, and small ones: a cold read of it takes
    // seconds (about 2 s per 100 MiB here), long enough for every kill to land in the middle of it.
    for (let i = 0; i < 40; i++) {
      const dir = join(tree, `d${i % 4}`);
      mkdirSync(dir, { recursive: true });
      const size = i % 8 === 0 ? 16 * MIB + i : MIB + randomInt(9 * MIB);
      writeFileSync(join(dir, `f${i}.bin`), randomBytes(size));
      writeFileSync(join(dir, `small${i}.txt`), `small file ${i}\n`);
      totalBytes += size;
    }
    reg = await startRegistry();
    const image = await buildImage(builder, tree, join(src.dir, 'layout'), 'crash', BUILD_ARGS);
    remote = `${reg.host}/fan/crash:latest`;
    await pushLayout(builder, image.ref, remote);
  }, 600_000);
  afterAll(async () => {
    // cleanup() also ends a fanotify group holder left in the run dir (the product keeps one on purpose
    // while a detached mount may still read: see the supervisor test).
    for (const h of [...harnesses, builder]) await h?.cleanup();
    for (const pid of holders) expect(isFanotifyHolder(pid)).toBe(false);
    await reg?.stop();
    src?.remove();
  });

  const fresh = (name: string): Harness => {
    const h = makeHarness(name, DAEMON_ENV);
    harnesses.push(h);
    return h;
  };
  const reads = (mnt: string, skip: (rel: string) => boolean = () => false): ReadRequest[] =>
    listFiles(tree).filter((rel) => !skip(rel)).map((rel, id) => ({ id, path: join(mnt, rel), source: join(tree, rel), ranges: null }));
  const holderPid = (h: Harness): number | null => {
    const f = join(h.runDir, 'fanotify-holder.pid');
    return existsSync(f) ? Number(readFileSync(f, 'utf8').trim()) : null;
  };

  /** A fanotify mount of the image at `mp` by a new daemon: its supervisor, worker and group holder (ended by afterAll). */
  const mountFanotify = async (h: Harness, mp: string): Promise<{ supervisor: number; worker: number; holder: number }> => {
    await h.ok('mount', '--insecure', '--mode', 'fanotify', '--image', remote, mp);
    const supervisor = h.daemonPid()!;
    const worker = await liveWorker(h);
    const holder = holderPid(h);
    expect(holder).not.toBeNull();
    holders.add(holder!);
    return { supervisor, worker, holder: holder! };
  };

  it('the worker SIGKILLed repeatedly during a cold whole-tree read: every file reads right', async () => {
    const h = fresh('fancrash-w');
    const mp = h.mountpoint('w');
    await h.ok('mount', '--insecure', '--mode', 'fanotify', '--image', remote, mp);
    expect((await mountStatus(h, mp)).mode).toBe('fanotify');
    const supervisor = h.daemonPid();
    const holder = holderPid(h);
    expect(holder).not.toBeNull();
    holders.add(holder!);
    const t0 = Date.now();
    let done = false;
    const reading = readCheck(reads(mp), READ_DEADLINE_MS).finally(() => { done = true; });
    let kills = 0;
    let last = 0;
    while (!done && kills < MAX_WORKER_KILLS) {
      const worker = await liveWorker(h, last);
      // A random moment soon after it came up: often while it still answers its predecessor's events.
      await sleep(randomInt(50, 400));
      if (done) break;
      process.kill(worker, 'SIGKILL');
      kills += 1;
      last = worker;
    }
    const results = await reading;
    const seconds = ((Date.now() - t0) / 1000).toFixed(1);
    const rec = recoveries(h);
    process.stderr.write(`fanotify worker kills: ${kills} during a ${seconds} s cold read of ${(totalBytes / MIB).toFixed(0)} MiB in ${results.length} files: ` +
      `${JSON.stringify(tally(results))}; ${rec.restarts} restarts, ${rec.recovered} events answered by the next worker (${rec.unjournaled} of them read but not journaled by the dead one; ${rec.readerGone} more of its own I/O), ` +
      `${rec.deniedUnknown} denied unknown, ${rec.unserved} denied for a file no mount serves\n`);
    if (results.some((r) => r.outcome === 'hung')) {
      const w = await liveWorker(h);
      const blocked = readdirSync(`/proc/${w}/task`).filter((t) => readFileSync(`/proc/${w}/task/${t}/wchan`, 'utf8').startsWith('fanotify'));
      process.stderr.write(`fanotify worker kills: reads hung; worker ${w} has ${blocked.length} threads waiting in fanotify (its own I/O on the data files raised pre-content events)\n`);
    }
    expect(results.filter((r) => r.outcome !== 'right')).toEqual([]);
    // The test proves something only if the worker died again and again while the read went on.
    expect(kills).toBeGreaterThanOrEqual(5);
    expect(rec.restarts).toBe(kills);
    expect(rec.deniedUnknown).toBe(0);
    expect(h.daemonPid()).toBe(supervisor);
    expect(await liveWorker(h, last)).toBeGreaterThan(0);
    await h.ok('umount', mp);
    expect(leftovers(h, [mp])).toEqual({ mounts: [], loops: [] });
  }, 300_000);

  it('the supervisor SIGKILLed while its worker is stopped: the holder ends that worker before it answers any event itself', async () => {
    const h = fresh('fancrash-stopped');
    const mp = h.mountpoint('m');
    const { supervisor, worker } = await mountFanotify(h, mp);
    // Stopped, the worker cannot see its supervisor die; continued after the holder's sweep, an answer it
    // had on its way could meet one of the holder's own events with the same number.
    process.kill(worker, 'SIGSTOP');
    try {
      const reading = readCheck(reads(mp).slice(0, 12), READ_DEADLINE_MS);
      await sleep(500);
      process.kill(supervisor, 'SIGKILL');
      const ended = await waitUntil(() => !alive(worker), 10_000);
      const results = await reading;
      process.stderr.write(`fanotify supervisor kill with its worker stopped: the worker ${ended ? 'was ended' : 'STILL RUNS'}; reads ${JSON.stringify(tally(results))}\n`);
      expect(ended).toBe(true);
      expect(results.filter((r) => r.outcome !== 'right' && r.outcome !== 'error')).toEqual([]);
    } finally {
      try { process.kill(worker, 'SIGKILL'); } catch { /* ended */ }
    }
  }, 300_000);

  it('the supervisor SIGKILLed during a cold read: no zeros; the next mount adopts the group and cleans up the old mount; the holder stays only while needed', async () => {
    const h = fresh('fancrash-s');
    const mp = h.mountpoint('old');
    const { supervisor, worker, holder } = await mountFanotify(h, mp);
    expect(alive(holder)).toBe(true);
    // Two files are opened through this mount now and read only at the end: one after the next
    // daemon's own mount of the image is gone, one after that daemon stopped. Nothing else reads them.
    const [parkedA, parkedB] = listFiles(tree).filter((rel) => /\/f(0|6)\.bin$/.test(rel));
    const parked = (rel: string): boolean => rel === parkedA || rel === parkedB;
    const readerA = parkedReader(join(mp, parkedA!), join(tree, parkedA!));
    const readerB = parkedReader(join(mp, parkedB!), join(tree, parkedB!));
    await Promise.all([readerA.opened, readerB.opened]);

    const reading = readCheck(reads(mp, parked), READ_DEADLINE_MS);
    await sleep(randomInt(300, 1_500));
    expect((await mountStatus(h, mp)).bytesFetched).toBeGreaterThan(0);
    process.kill(supervisor, 'SIGKILL');
    // Its worker follows it; the holder keeps the group, so readers wait instead of reading holes.
    expect(await waitUntil(() => !alive(supervisor) && !alive(worker), 10_000)).toBe(true);
    await sleep(1_000);
    expect(alive(holder)).toBe(true);

    // The next mount starts a new daemon on the same run dir: it adopts the holder's group.
    const mp2 = h.mountpoint('new');
    await h.ok('mount', '--insecure', '--mode', 'fanotify', '--image', remote, mp2);
    expect(h.daemonPid()).not.toBe(supervisor);
    // The new daemon holds the group with a holder of its own (restarted if killed); the old one ends.
    const newHolder = holderPid(h);
    expect(newHolder).not.toBeNull();
    holders.add(newHolder!);
    expect(await waitUntil(() => !alive(holder), 5_000)).toBe(true);
    const results = await reading;
    const adopted = readFileSync(join(h.runDir, 'daemon.log'), 'utf8').includes('adopted the fanotify group a previous daemon left');
    const rec = recoveries(h);
    process.stderr.write(`fanotify supervisor kill: reads through the dead daemon's mount ${JSON.stringify(tally(results))}; ` +
      `${rec.recovered} events it left answered by the new daemon (${rec.unserved} of all events denied EIO for a file no mount served yet), ` +
      `${rec.deniedUnknown} denied unknown; group adopted: ${adopted}\n`);
    expect(adopted).toBe(true);
    expect(results.filter((r) => r.outcome !== 'right' && r.outcome !== 'error')).toEqual([]);
    // The dead daemon's mount: cleaned up (no longer mounted here) or adopted (in the new daemon's status).
    const status = JSON.parse(await h.ok('status', '--json')) as StatusJson;
    const cleaned = leftovers(h, [mp]).mounts.length === 0;
    const kept = status.mounts.some((m) => m.mountpoint === mp);
    process.stderr.write(`fanotify supervisor kill: the old mount was ${cleaned ? 'cleaned up' : kept ? 'adopted' : 'LEFT MOUNTED'}\n`);
    expect(cleaned || kept).toBe(true);
    // The new mount reads right (the parked files aside: they must stay unread until the end).
    expect((await readCheck(reads(mp2, parked), READ_DEADLINE_MS)).filter((r) => r.outcome !== 'right')).toEqual([]);

    // The new daemon's mount of the same blobs gone: a file opened through the old mount never reads as zeros.
    await h.ok('umount', mp2);
    const afterUmount = await readerA.result(30_000);
    process.stderr.write(`fanotify supervisor kill: a file opened through the dead daemon's mount, read after the next daemon's mount was unmounted: ${JSON.stringify(afterUmount)}\n`);
    expect(['right', 'error']).toContain(afterUmount.outcome);

    // The new daemon stopped cleanly: the same, and the holder is not left behind unless it must stay
    // (a detached mount may still read: then it keeps the group, and readers wait instead of reading holes).
    const newSupervisor = h.daemonPid()!;
    process.kill(newSupervisor, 'SIGTERM');
    expect(await waitUntil(() => !alive(newSupervisor), 30_000)).toBe(true);
    const afterStop = await readerB.result(10_000);
    const holderLeft = alive(newHolder!);
    process.stderr.write(`fanotify supervisor kill: a file opened through the dead daemon's mount, read after the next daemon stopped: ${JSON.stringify(afterStop)}; ` +
      `the holder is ${holderLeft ? 'still running' : 'gone'}\n`);
    expect(['right', 'error', ...(holderLeft ? ['hung'] : [])]).toContain(afterStop.outcome);
    expect(existsSync(join(h.runDir, 'fanotify-holder.pid'))).toBe(holderLeft);
    expect(leftovers(h, [mp, mp2]).mounts).toEqual([]);
  }, 300_000);
});
