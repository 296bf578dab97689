/**
 * Runs a workload's reading processes (ops-main.ts): every process opens what it needs and says
 * `ready`, then all are told `go` at once; the time is from the first one's start to the last one's end.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { BenchError } from '../util/errors.js';
import { compiledThreadUrl } from '../util/thread-url.js';
import { merge, quantile, type LatencyCounts } from './latency.js';
import type { OpsResult, OpsSpec } from './ops-spec.js';
import type { Measured } from './types.js';

/** The reading process's module, compiled (see compiledThreadUrl: under vitest, the build's). */
const opsMain = (): string => fileURLToPath(compiledThreadUrl(import.meta.url, 'ops-main.js', 'EBENCH'));

/** A process that has not answered in this long has hung on a read: it is killed and the workload fails. */
export const OPS_TIMEOUT_MS = 30 * 60_000;

interface Job {
  child: ChildProcess;
  ready: Promise<void>;
  done: Promise<OpsResult>;
}

function startJob(spec: OpsSpec, what: string): Job {
  const child = spawn(process.execPath, [opsMain(), JSON.stringify(spec)], { stdio: ['pipe', 'pipe', 'pipe'], cwd: '/' });
  let out = '';
  let err = '';
  let onReady: () => void = () => undefined;
  const ready = new Promise<void>((r) => { onReady = r; });
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8');
  child.stdout!.on('data', (s: string) => {
    out += s;
    if (out.startsWith('ready\n')) onReady();
  });
  child.stderr!.on('data', (s: string) => { err += s; });
  // A process that died early closes its stdin: `go` to it is no error of ours.
  child.stdin!.on('error', () => undefined);
  const done = new Promise<OpsResult>((resolve, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), OPS_TIMEOUT_MS);
    child.on('error', (e) => reject(new BenchError(`${what}: cannot start a reading process: ${e.message}`, {}, { cause: e })));
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (code === 0 && line !== undefined) {
        resolve(JSON.parse(line) as OpsResult);
        return;
      }
      reject(new BenchError(`${what}: a reading process failed (${signal ?? `exit ${code}`}): ${err.trim() || 'no message'}`));
    });
  });
  // A process that fails before `ready` must not leave the others waiting.
  done.catch(() => onReady());
  return { child, ready, done };
}

/** Runs `specs` (one process each) side by side and sums what they did. */
export async function runOps(specs: OpsSpec[], what: string): Promise<Measured> {
  const jobs = specs.map((s) => startJob(s, what));
  await Promise.all(jobs.map((j) => j.ready));
  for (const j of jobs) j.child.stdin!.end('go\n');
  const settled = await Promise.allSettled(jobs.map((j) => j.done));
  const failed = settled.find((s) => s.status === 'rejected');
  if (failed) throw failed.reason;
  const results = settled.map((s) => (s as PromiseFulfilledResult<OpsResult>).value);
  const latency: LatencyCounts = {};
  for (const r of results) merge(latency, r.latency);
  const start = Math.min(...results.map((r) => r.startNs));
  const end = Math.max(...results.map((r) => r.endNs));
  const p50 = quantile(latency, 0.5);
  const p99 = quantile(latency, 0.99);
  return {
    wallMs: (end - start) / 1e6,
    ops: results.reduce((n, r) => n + r.ops, 0),
    bytes: results.reduce((n, r) => n + r.bytes, 0),
    p50Us: p50 === null ? null : p50 / 1000,
    p99Us: p99 === null ? null : p99 / 1000,
  };
}
