/**
 * Runs a workload's reading processes: every process opens what it needs and says `ready`, then all
 * are told `go` at once; the time is from the first one's start to the last one's end. seq and rand
 * are read by the C reader (native/bench-reader.c, built by `make build`), the rest by ops-main.ts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BenchError } from '../util/errors.js';
import { compiledThreadUrl } from '../util/thread-url.js';
import { merge, quantile, record, type LatencyCounts } from './latency.js';
import type { OpsResult, OpsSpec } from './ops-spec.js';
import type { Measured } from './types.js';

/** The reading process's module, compiled (see compiledThreadUrl: under vitest, the build's). */
const opsMain = (): string => fileURLToPath(compiledThreadUrl(import.meta.url, 'ops-main.js', 'EBENCH'));

/** dist/native/bench-reader, from this module in dist/src/bench or (under vitest) in src/bench. */
export function benchReaderPath(): string {
  const here = fileURLToPath(import.meta.url);
  const cut = here.lastIndexOf('/dist/src/');
  const repo = cut >= 0 ? here.slice(0, cut) : here.slice(0, here.lastIndexOf('/src/'));
  return join(repo, 'dist', 'native', 'bench-reader');
}

/** Who reads seq and rand: the C reader when `make build` made it, else Node (said in the bench's output). */
export function seqRandReader(): 'c' | 'node' {
  return existsSync(benchReaderPath()) ? 'c' : 'node';
}

/** The command of one reading process, and where the C reader leaves its latencies (null: in the JSON). */
function command(spec: OpsSpec, scratch: string, index: number): { args: string[]; file: string; latencies: string | null } {
  if ((spec.op === 'seq' || spec.op === 'rand') && seqRandReader() === 'c') {
    const latencies = join(scratch, `latencies-${index}`);
    const args = spec.op === 'seq'
      ? ['seq', String(spec.blockSize), String(spec.passes ?? 1), latencies, ...spec.files]
      : ['rand', String(spec.reads), String(spec.seed), latencies, ...spec.files];
    return { file: benchReaderPath(), args, latencies };
  }
  return { file: process.execPath, args: [opsMain(), JSON.stringify(spec)], latencies: null };
}

/** The float64 nanoseconds the C reader wrote, counted into buckets. */
function latenciesOf(file: string): LatencyCounts {
  const raw = readFileSync(file);
  const values = new Float64Array(raw.buffer, raw.byteOffset, Math.floor(raw.length / 8));
  const counts: LatencyCounts = {};
  for (const ns of values) record(counts, ns);
  return counts;
}

/** A process that has not answered in this long has hung on a read: it is killed and the workload fails. */
export const OPS_TIMEOUT_MS = 30 * 60_000;

interface Job {
  child: ChildProcess;
  ready: Promise<void>;
  done: Promise<OpsResult>;
}

function startJob(spec: OpsSpec, what: string, scratch: string, index: number): Job {
  const cmd = command(spec, scratch, index);
  const child = spawn(cmd.file, cmd.args, { stdio: ['pipe', 'pipe', 'pipe'], cwd: '/' });
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
    // 'close', not 'exit': the answer may still be in the pipe when the process has exited.
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (code === 0 && line !== undefined) {
        const result = JSON.parse(line) as OpsResult;
        resolve(cmd.latencies === null ? result : { ...result, latency: latenciesOf(cmd.latencies) });
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
  const scratch = mkdtempSync(join(tmpdir(), 'ondemand-bench-ops-'));
  let settled: PromiseSettledResult<OpsResult>[];
  try {
    const jobs = specs.map((s, i) => startJob(s, what, scratch, i));
    await Promise.all(jobs.map((j) => j.ready));
    for (const j of jobs) j.child.stdin!.end('go\n');
    settled = await Promise.allSettled(jobs.map((j) => j.done));
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
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
