/**
 * A reader that goes away (`ondemand status | head -1`): the CLI ends quietly, exit 0, no stack trace.
 * The pipe's read end is closed before the CLI writes, so every run hits EPIPE (with `head` it is a race).
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, needs } from '../helpers/env.js';
import { cliBuilt, cliPath, makeHarness, type Harness } from '../mount/harness.js';
import { buildImage, makeTree } from '../mount/images.js';

function withClosedStdout(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cliPath, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy();
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

describe.skipIf(!needs('closed stdout', [cliBuilt(), 'a current build (make build)']))('writing to a closed pipe', () => {
  let h: Harness;
  let tmp: { dir: string; remove: () => void };
  let ref: string;

  beforeAll(async () => {
    h = makeHarness('cli-pipe');
    tmp = makeTempDir('cli-pipe');
    makeTree(join(tmp.dir, 'tree'), { seed: 'p', bulkBytes: 64 * 1024 });
    ref = (await buildImage(h, join(tmp.dir, 'tree'), join(tmp.dir, 'layout'))).ref;
  });
  afterAll(async () => {
    await h.cleanup();
    tmp.remove();
  });

  for (const args of [['status'], ['inspect', '<ref>'], ['detect'], ['--help']]) {
    it(`ondemand ${args.join(' ')} ends quietly with exit 0`, async () => {
      const r = await withClosedStdout(args.map((a) => (a === '<ref>' ? ref : a)), h.env);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
    });
  }
});
