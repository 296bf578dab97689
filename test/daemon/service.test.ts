/**
 * The daemon as a systemd service, as far as a host without systemd running can prove it: the unit
 * that `make install` writes passes `systemd-analyze verify`; the daemon speaks sd_notify (READY with
 * its MAINPID, and the successor's MAINPID after `daemon restart`, which is the unit's ExecReload) to
 * a $NOTIFY_SOCKET this test listens on; and SIGHUP reopens a log file that logrotate moved away.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { haveCommand, isRoot, makeTempDir, needs } from '../helpers/env.js';
import { cliBuilt, makeHarness, repoRoot, waitUntil, type Harness } from '../mount/harness.js';

const ready = needs('the daemon as a service', [isRoot, 'root'], [cliBuilt(), 'a current build (make build)'], [haveCommand('systemd-analyze'), 'systemd-analyze (systemd)'],
  [haveCommand('python3'), 'python3']);

/** A Unix datagram socket that prints each message it gets as one JSON line (what systemd's notify socket receives). */
const LISTENER = `
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print('listening', flush=True)
while True:
    print(json.dumps(s.recv(4096).decode()), flush=True)
`;

describe.skipIf(!ready)('the daemon as a systemd service', () => {
  let h: Harness;
  let tmp: { dir: string; remove: () => void };
  let listener: ChildProcess;
  const notes: string[] = [];

  beforeAll(async () => {
    tmp = makeTempDir('service');
    const socket = join(tmp.dir, 'notify.sock');
    listener = spawn('python3', ['-c', LISTENER, socket], { stdio: ['ignore', 'pipe', 'inherit'] });
    let buf = '';
    listener.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const lines = buf.split('\n');
      buf = lines.pop()!;
      for (const l of lines) if (l.startsWith('"')) notes.push(JSON.parse(l) as string);
    });
    await waitUntil(() => existsSync(socket), 5_000);
    h = makeHarness('service', { NOTIFY_SOCKET: socket, ONDEMAND_CONFIG: join(tmp.dir, 'config.toml') });
    writeFileSync(join(tmp.dir, 'config.toml'), `[log]\nfile = "${join(tmp.dir, 'daemon.jsonl')}"\nlevel = "info"\n`);
  });
  afterAll(async () => {
    await h?.cleanup();
    listener?.kill();
    tmp?.remove();
  });

  it('make install writes a unit that systemd-analyze verify accepts', () => {
    const prefix = join(tmp.dir, 'prefix');
    const units = join(tmp.dir, 'units');
    execFileSync('make', ['-s', '-C', repoRoot, 'install', `PREFIX=${prefix}`, `UNITDIR=${units}`], { stdio: 'ignore' });
    const unit = readFileSync(join(units, 'ondemand.service'), 'utf8');
    expect(unit).toContain(`ExecStart=${prefix}/bin/ondemand daemon run`);
    expect(unit).toContain(`ExecReload=${prefix}/bin/ondemand daemon restart`);
    // Exit 0 and nothing printed: every directive known, every command executable.
    expect(execFileSync('systemd-analyze', ['verify', join(units, 'ondemand.service')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })).toBe('');
  });

  it('tells systemd it is ready with its pid, and the successor\'s pid after a restart', async () => {
    await h.ok('daemon', 'start');
    const first = h.daemonPid();
    expect(await waitUntil(() => notes.some((n) => n.includes(`MAINPID=${first}`)), 10_000)).toBe(true);
    expect(notes.find((n) => n.includes(`MAINPID=${first}`))).toMatch(/READY=1/);
    await h.ok('daemon', 'restart');
    const second = h.daemonPid();
    expect(second).not.toBe(first);
    expect(await waitUntil(() => notes.some((n) => n.includes(`READY=1\nMAINPID=${second}`)), 10_000)).toBe(true);
  }, 60_000);

  it('SIGHUP reopens the log file after it was moved away', async () => {
    const logFile = join(tmp.dir, 'daemon.jsonl');
    expect(existsSync(logFile)).toBe(true);
    renameSync(logFile, `${logFile}.1`);
    process.kill(h.daemonPid()!, 'SIGHUP');
    expect(await waitUntil(() => existsSync(logFile) && readFileSync(logFile, 'utf8').includes('log reopened'), 10_000)).toBe(true);
    await h.ok('daemon', 'stop');
    expect(notes.some((n) => n.includes('STOPPING=1'))).toBe(true);
  }, 60_000);
});
