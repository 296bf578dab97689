/** What one reading process of `ondemand bench` does (ops-main.ts), and what it answers. */
import type { LatencyCounts } from './latency.js';

export type OpsSpec =
  /** read(2) of each file (absolute paths), `blockSize` bytes at a time; all of them `passes` times (default 1). */
  | { op: 'seq'; files: string[]; blockSize: number; passes?: number }
  /** `reads` preads of 4 KiB at random pages of the files (each page equally likely), xorshift seeded by `seed`. */
  | { op: 'rand'; files: string[]; reads: number; seed: number }
  /** lstat of every path of the list file (one a line, relative to root). */
  | { op: 'stat'; root: string; list: string }
  /** Every entry of every directory of the list file. */
  | { op: 'readdir'; root: string; list: string }
  /** Every file of the list file read whole, `blockSize` bytes at a time. */
  | { op: 'tree'; root: string; list: string; blockSize: number };

/** One process's answer (a JSON line on stdout). Times: CLOCK_MONOTONIC in ns, shared by every process. */
export interface OpsResult {
  startNs: number;
  endNs: number;
  ops: number;
  bytes: number;
  latency: LatencyCounts;
}
