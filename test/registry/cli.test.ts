/**
 * `ondemand push` and `ondemand pull` (the built CLI) against real registries with Basic and token
 * auth: an image goes layout → registry → another layout byte for byte, then mounts' resolution
 * reads it back from the registry; bad input gives one `ondemand:` line and no secret anywhere in
 * the output, even at trace log level.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initLayout, putBlobBytes, tagManifest } from '../../src/build/write-layout.js';
import { MEDIA_TYPE_OCI_MANIFEST } from '../../src/format/image/media-types.js';
import { resolveRegistryImage } from '../../src/resolve/registry.js';
import { haveCommand, makeTempDir, needs } from '../helpers/env.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { makeImage, type FixtureImage } from './fixtures.js';

const root = join(import.meta.dirname, '..', '..');
const cli = join(root, 'bin', 'ondemand');
const built = existsSync(join(root, 'dist', 'src', 'cli', 'commands', 'push.js'));
const ready = needs('ondemand push/pull CLI', [haveCommand('docker-registry'), 'docker-registry'], [haveCommand('htpasswd'), 'htpasswd'], [built, 'a build (make build)']);

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    execFile(cli, args, { env: { PATH: process.env.PATH, HOME: '/nonexistent', ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
      if (process.env.ONDEMAND_TEST_VERBOSE) process.stderr.write(`${args[0]} took ${Date.now() - t0} ms\n`);
      resolve({ code, stdout, stderr });
    });
  });
}

async function writeLayout(dir: string, img: FixtureImage, tag: string): Promise<void> {
  await initLayout(dir);
  for (const b of img.blobs) await putBlobBytes(dir, b.stored, 'application/octet-stream');
  await putBlobBytes(dir, img.bootstrapStored, 'application/octet-stream');
  await putBlobBytes(dir, img.config, 'application/octet-stream');
  const d = await putBlobBytes(dir, img.manifest, MEDIA_TYPE_OCI_MANIFEST);
  await tagManifest(dir, d, tag);
}

/** Name → sha256 of content, for every blob file (deep-equal on big Buffers is very slow). */
function blobFiles(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of readdirSync(join(dir, 'blobs', 'sha256'))) out[f] = createHash('sha256').update(readFileSync(join(dir, 'blobs', 'sha256', f))).digest('hex');
  return out;
}

for (const auth of ['basic', 'token'] as const) {
  describe.skipIf(!ready)(`ondemand push/pull, auth=${auth}`, () => {
    let reg: TestRegistry;
    let tmp: { dir: string; remove: () => void };
    let img: FixtureImage;

    beforeAll(async () => {
      reg = await startRegistry({ auth });
      tmp = makeTempDir(`cli-${auth}`);
      img = makeImage([3 * 1024 * 1024, 8192]);
      await writeLayout(join(tmp.dir, 'src'), img, 'v1');
    });
    afterAll(async () => {
      await reg?.stop();
      tmp?.remove();
    });

    it('push then pull copies the image byte for byte; resolution reads it from the registry', async () => {
      const creds = `${reg.user}:${reg.password}`;
      const push = await run(['push', `oci:${join(tmp.dir, 'src')}:v1`, `${reg.host}/cli/img:v1`, '--creds', creds, '--json'], { ONDEMAND_LOG_LEVEL: 'trace' });
      // Debug logs of every request, and still no password, Basic blob or bearer token anywhere.
      expect(push.stderr).toMatch(/registry request/);
      for (const text of [push.stdout, push.stderr]) {
        expect(text).not.toContain(reg.password!);
        expect(text).not.toContain(Buffer.from(creds).toString('base64'));
        expect(text).not.toMatch(/Bearer ey|Basic [A-Za-z0-9+/=]{8}/);
      }
      expect(push.code, push.stderr).toBe(0);
      const pushed = JSON.parse(push.stdout) as { digest: string; blobs: number; bytesMoved: number };
      expect(pushed.digest).toBe(img.manifestDigest);
      expect(pushed.blobs).toBe(4);
      expect(push.stderr).toMatch(/push blob sha256:[0-9a-f]{12} .* uploaded\n/); // plain lines: not a TTY

      // Again: every blob is already there.
      const again = await run(['push', `oci:${join(tmp.dir, 'src')}:v1`, `${reg.host}/cli/img:v2`], { ONDEMAND_REGISTRY_USER: reg.user, ONDEMAND_REGISTRY_PASSWORD: reg.password });
      expect(again.code, again.stderr).toBe(0);
      expect(again.stdout).toMatch(/0 bytes uploaded/);

      const pull = await run(['pull', `${reg.host}/cli/img:v2`, `oci:${join(tmp.dir, 'dst')}:copy`, '--creds', creds]);
      expect(pull.code, pull.stderr).toBe(0);
      expect(pull.stdout).toContain(img.manifestDigest);
      const copied = blobFiles(join(tmp.dir, 'dst'));
      expect(copied).toEqual(blobFiles(join(tmp.dir, 'src')));
      expect(Object.entries(copied).every(([name, hash]) => name === hash)).toBe(true);

      const r = await resolveRegistryImage(`${reg.host}/cli/img:v1`, { creds });
      try {
        expect((await r.loadBootstrap()).equals(img.bootstrap)).toBe(true);
        expect((await r.loadToc(r.image.blobs[0]!)).frames.length).toBe(48);
      } finally {
        await r.fetcher.close();
      }
    });

    it('wrong password, unknown tag, bad reference: one line each, exit codes 1/1/2, no secret even at trace level', async () => {
      const secret = 'Hunter2-not-the-password';
      const wrong = await run(['pull', `${reg.host}/cli/img:v1`, `oci:${join(tmp.dir, 'x')}`, '--creds', `${reg.user}:${secret}`], { ONDEMAND_LOG_LEVEL: 'trace' });
      expect(wrong.code).toBe(1);
      const lastLine = wrong.stderr.trim().split('\n').pop()!;
      expect(lastLine).toMatch(/^ondemand: .*(rejected|denied) .*tester/);
      for (const text of [wrong.stdout, wrong.stderr]) {
        expect(text).not.toContain(secret);
        expect(text).not.toContain(Buffer.from(`${reg.user}:${secret}`).toString('base64'));
      }
      expect(wrong.stderr).toMatch(/"level":10|registry request/); // trace logging was on

      const missing = await run(['pull', `${reg.host}/cli/img:nope`, `oci:${join(tmp.dir, 'y')}`, '--creds', `${reg.user}:${reg.password}`]);
      expect(missing.code).toBe(1);
      expect(missing.stderr.trim()).toMatch(/^ondemand: manifest 127\.0\.0\.1:[0-9]+\/cli\/img:nope not found \(MANIFEST_UNKNOWN/);
      expect(missing.stderr.trim().split('\n')).toHaveLength(1);

      const bad = await run(['push', `oci:${join(tmp.dir, 'src')}:v1`, `${reg.host}/Bad Name`]);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toMatch(/^ondemand: invalid image reference/);
    });
  });
}
