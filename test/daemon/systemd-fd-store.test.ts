/**
 * The daemon under real systemd (PID 1 of a container of its own: test/helpers/systemd-container.ts),
 * with the unit `make install` writes: every kernel fd goes to systemd's fd store, so `systemctl
 * restart ondemand` while images of every mode are being read gives every reader the right bytes and
 * the mounts stay, served by the new daemon; so does a daemon killed by SIGKILL (Restart=on-failure),
 * also with the fanotify group's holder killed while no daemon runs (the store keeps the group);
 * `systemctl stop` unmounts everything and leaves systemd holding nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { holderPidPath } from '../../src/daemon/fanotify-holder.js';
import { isRoot, makeTempDir, needs } from '../helpers/env.js';
import { bootSystemd, systemdContainerMissing, type SystemdContainer } from '../helpers/systemd-container.js';
import { cliBuilt, detectHere, makeHarness, repoRoot, type Harness } from '../mount/harness.js';
import { imagePerMode, restartModes, sha } from '../mount/images.js';

const missing = systemdContainerMissing();
const ready = needs('the daemon under systemd', [isRoot, 'root'], [cliBuilt(), 'a current build (make build)'], [missing === null, missing ?? '']);

describe.skipIf(!ready)('systemctl restart keeps every mount serving (the fd store)', () => {
  let h: Harness;
  let src: { dir: string; remove: () => void };
  let box: SystemdContainer;
  const images: { mode: string; args: string[]; tree: string; mountpoint: string }[] = [];
  const cli = (...args: string[]): Promise<string> => box.ok(process.execPath, [join(repoRoot, 'bin', 'ondemand'), ...args], { ONDEMAND_RUN_DIR: h.runDir, ONDEMAND_CACHE_DIR: h.cacheDir });
  const mainPid = async (): Promise<number> => Number((await box.ok('systemctl', ['show', '--property=MainPID', '--value', 'ondemand.service'])).trim());
  const storedFds = async (): Promise<number> => Number((await box.ok('systemctl', ['show', '--property=NFileDescriptorStore', '--value', 'ondemand.service'])).trim());
  /** The mountpoints inside the container that are the test's. */
  const mountedInside = (): string[] => readFileSync(`/proc/${box.pid}/mountinfo`, 'utf8').split('\n').map((l) => l.split(' ')[4] ?? '')
    .filter((mp) => images.some((img) => mp === img.mountpoint));
  /** sha256 of a file read inside the container: the digest, or the error it printed. */
  const logFile = (): string => join(src.dir, 'daemon.jsonl');
  const shaInside = async (path: string): Promise<string> => {
    const r = await box.run('sha256sum', [path], {}, 180_000);
    return r.code === 0 ? r.stdout.split(' ')[0]! : `error ${r.code}: ${r.stderr.trim()}`;
  };

  beforeAll(async () => {
    h = makeHarness('systemd');
    src = makeTempDir('systemd-src');
    const built = await imagePerMode(h, src.dir, restartModes(detectHere()?.features.fanotifyPreContent?.supported ?? false), 'systemd', 48 << 20);
    images.push(...built.map((img) => ({ ...img, mountpoint: h.mountpoint(`s-${img.mode}`) })));
    // The unit as `make install` writes it, with this run's run and cache dirs.
    const units = join(src.dir, 'units');
    execFileSync('make', ['-s', '-C', repoRoot, 'install', `PREFIX=${join(src.dir, 'prefix')}`, `UNITDIR=${units}`], { stdio: 'ignore' });
    const unit = readFileSync(join(units, 'ondemand.service'), 'utf8')
      .replace('[Service]\n', `[Service]\nEnvironment=ONDEMAND_RUN_DIR=${h.runDir} ONDEMAND_CACHE_DIR=${h.cacheDir} ONDEMAND_LOG_FILE=${logFile()}\n`);
    box = await bootSystemd('ondemand-test', { 'ondemand.service': unit }, join(src.dir, 'box'));
    await box.ok('systemctl', ['start', 'ondemand.service'], {}, 60_000);
  }, 300_000);
  afterAll(async () => {
    // The daemon's own cleanup first (a failed test may have left mounts), then the container's.
    await box?.run('systemctl', ['stop', 'ondemand.service']);
    await box?.stop();
    await h?.cleanup();
    src?.remove();
  });

  it('systemctl restart while every mode is being read: right bytes, the mounts stay, the new daemon serves them', async () => {
    for (const img of images) await cli('mount', '--mode', img.mode, ...img.args, img.mountpoint);
    const before = await mainPid();
    expect(await storedFds()).toBeGreaterThanOrEqual(images.filter((i) => i.mode !== 'fanotify').length);
    const reads = images.map((img) => shaInside(join(img.mountpoint, 'data', 'bulk.bin')));
    await box.ok('systemctl', ['restart', 'ondemand.service'], {}, 120_000);
    const results = await Promise.all(reads);
    const after = await mainPid();
    process.stderr.write(`systemctl restart: daemon ${before} → ${after}; reads: ${results.join(', ')}\n`);
    expect(after).not.toBe(before);
    for (const [i, img] of images.entries()) {
      expect(results[i], img.mode).toBe(sha(join(img.tree, 'data', 'bulk.bin')));
      // Cold files afterwards, through the new daemon.
      expect(await shaInside(join(img.mountpoint, 'data', 'nested', 'deeper', 'three-mib.bin')), img.mode).toBe(sha(join(img.tree, 'data', 'nested', 'deeper', 'three-mib.bin')));
    }
    const status = JSON.parse(await cli('status', '--json')) as { mounts: { mountpoint: string; mode: string }[] };
    expect(status.mounts.map((m) => m.mode).sort()).toEqual(images.map((img) => img.mode).sort());
    expect(mountedInside().sort()).toEqual(images.map((img) => img.mountpoint).sort());
  }, 300_000);

  it('a daemon killed by SIGKILL is restarted by systemd and takes its mounts back from the store; reads made meanwhile wait for it', async () => {
    const before = await mainPid();
    const unit = async (property: string): Promise<string> => (await box.ok('systemctl', ['show', `--property=${property}`, '--value', 'ondemand.service'])).trim();
    await box.ok('systemctl', ['kill', '--kill-who=main', '--signal=SIGKILL', 'ondemand.service']);
    // Restart=on-failure, RestartSec=2: read files not read yet while no daemon runs at all.
    for (let i = 0; i < 100 && (await unit('SubState')) !== 'auto-restart'; i++) await new Promise((r) => setTimeout(r, 50));
    const downWhenReadsBegan = await unit('SubState');
    const reads = images.map((img) => shaInside(join(img.mountpoint, 'data', 'medium.bin')));
    const results = await Promise.all(reads);
    for (let i = 0; i < 100 && (await unit('ActiveState')) !== 'active'; i++) await new Promise((r) => setTimeout(r, 100));
    const after = await mainPid();
    process.stderr.write(`SIGKILL: daemon ${before} → ${after}; reads began in ${downWhenReadsBegan}: ${results.join(', ')}\n`);
    expect(downWhenReadsBegan).toBe('auto-restart');
    expect(after).not.toBe(before);
    for (const [i, img] of images.entries()) expect(results[i], img.mode).toBe(sha(join(img.tree, 'data', 'medium.bin')));
    expect(mountedInside().sort()).toEqual(images.map((img) => img.mountpoint).sort());
  }, 300_000);

  it('the fanotify group holder killed while no daemon runs: the store keeps the group, cold reads get their bytes', async (ctx) => {
    if (detectHere()?.features.fanotifyPreContent?.supported !== true) {
      ctx.skip(); // vitest prints it as skipped: this kernel has no fanotify pre-content events
      return;
    }
    const [built] = await imagePerMode(h, join(src.dir, 'holder'), ['fanotify'], 'systemd-holder', 4 << 20);
    const img = { ...built!, mountpoint: h.mountpoint('s-holder') };
    images.push(img); // the stop below must unmount it too
    await cli('mount', '--mode', 'fanotify', ...img.args, img.mountpoint);
    const file = join('data', 'medium.bin');
    const present = async (): Promise<number> => (JSON.parse(await cli('status', '--json')) as { mounts: { mountpoint: string; bytesPresent: number }[] })
      .mounts.find((m) => m.mountpoint === img.mountpoint)!.bytesPresent;
    const before = await present();
    const unit = async (property: string): Promise<string> => (await box.ok('systemctl', ['show', `--property=${property}`, '--value', 'ondemand.service'])).trim();
    const holder = readFileSync(holderPidPath(h.runDir), 'utf8').trim();
    await box.ok('systemctl', ['kill', '--kill-who=main', '--signal=SIGKILL', 'ondemand.service']);
    for (let i = 0; i < 100 && (await unit('SubState')) !== 'auto-restart'; i++) await new Promise((r) => setTimeout(r, 50));
    // Nothing of the daemon holds the group now but systemd's store: before the store kept it, this
    // closed the group, and the read below saw the file's holes as zeros.
    await box.ok('kill', ['-KILL', holder]);
    expect(await unit('SubState')).toBe('auto-restart');
    const read = await shaInside(join(img.mountpoint, file));
    for (let i = 0; i < 100 && (await unit('ActiveState')) !== 'active'; i++) await new Promise((r) => setTimeout(r, 100));
    expect(read).toBe(sha(join(img.tree, file)));
    expect(await present()).toBeGreaterThan(before);
    expect(readFileSync(holderPidPath(h.runDir), 'utf8').trim()).not.toBe(holder);
  }, 300_000);

  it('systemctl restart with fanotify mounts only: they stay, served by the new daemon (the store holds their group)', async (ctx) => {
    if (detectHere()?.features.fanotifyPreContent?.supported !== true) {
      ctx.skip(); // vitest prints it as skipped: this kernel has no fanotify pre-content events
      return;
    }
    for (const img of images.filter((i) => i.mode !== 'fanotify')) await cli('umount', img.mountpoint);
    images.splice(0, images.length, ...images.filter((i) => i.mode === 'fanotify'));
    const before = await mainPid();
    await box.ok('systemctl', ['restart', 'ondemand.service'], {}, 120_000);
    expect(await mainPid()).not.toBe(before);
    // The mode `auto` picks on this host: no FUSE fd nor /dev/cachefiles in the store, only the group.
    expect(mountedInside().sort()).toEqual(images.map((img) => img.mountpoint).sort());
    const file = join('data', 'nested', 'deeper', 'three-mib.bin');
    for (const img of images) expect(await shaInside(join(img.mountpoint, file)), img.mountpoint).toBe(sha(join(img.tree, file)));
  }, 300_000);

  it('systemctl stop unmounts every image, and systemd holds none of its fds', async () => {
    await box.ok('systemctl', ['stop', 'ondemand.service'], {}, 120_000);
    const left = mountedInside();
    if (left.length > 0) process.stderr.write(`still mounted after stop: ${left.join(' ')}; the daemons' log:\n${readFileSync(logFile(), 'utf8')}\n`);
    expect(left).toEqual([]);
    expect(await storedFds()).toBe(0);
    expect((await box.run('systemctl', ['is-active', 'ondemand.service'])).stdout.trim()).toBe('inactive');
  }, 300_000);
});
