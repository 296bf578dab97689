/**
 * Worker threads started ahead of the work they will do. A thread takes 20-30 ms of a CPU to start (its
 * isolate, its modules); a FUSE mount's four threads started with the mount ran beside its first reads
 * (a fresh fuse-tree mount's first warm sequential read: 0.6-0.75x of the next one, bench/RESULTS.md).
 * A spare starts with nothing to do, loads its module and waits for the data it will run with: the
 * thread's module reads that through threadData(), never from workerData directly.
 */
import { Worker, parentPort, workerData, type TransferListItem } from 'node:worker_threads';

/** workerData of a spare, and the key of the message that hands it its data. */
const SPARE_KEY = 'ondemandSpareThread';

interface Spare {
  worker: Worker;
  /** The pool's listeners, removed when the thread is handed out. */
  forget: () => void;
}

interface Pool {
  url: URL;
  /** How many spares to keep once restocked. */
  want: number;
  idle: Spare[];
}

const pools = new Map<string, Pool>();
/** Set when the process winds down: no spare starts any more. */
let ended = false;

function poolOf(url: URL): Pool {
  let pool = pools.get(url.href);
  if (pool === undefined) {
    pool = { url, want: 0, idle: [] };
    pools.set(url.href, pool);
  }
  return pool;
}

/**
 * Keeps `count` threads of the module at `url` started and idle from now on (more than are kept
 * already, never fewer). They hold no fd and do not keep the process alive.
 */
export function keepSpareThreads(url: URL, count: number): void {
  wantSpareThreads(url, count);
  restockSpareThreads(url);
}

/** Like keepSpareThreads, but none start before the next restockSpareThreads. */
export function wantSpareThreads(url: URL, count: number): void {
  const pool = poolOf(url);
  pool.want = Math.max(pool.want, count);
}

/** Starts spares of `url` until as many are idle as are wanted (after some were handed out). */
export function restockSpareThreads(url: URL): void {
  const pool = pools.get(url.href);
  if (pool === undefined || ended) return;
  while (pool.idle.length < pool.want) {
    const worker = new Worker(pool.url, { workerData: { [SPARE_KEY]: true } });
    const gone = (): void => {
      const i = pool.idle.findIndex((s) => s.worker === worker);
      if (i >= 0) pool.idle.splice(i, 1);
    };
    worker.on('error', gone);
    worker.on('exit', gone);
    worker.unref();
    pool.idle.push({ worker, forget: () => { worker.off('error', gone); worker.off('exit', gone); } });
  }
}

/**
 * No more spares (the process is winding down): the idle ones end, and the threads that end from now
 * on (a FUSE mount's, as everything is unmounted) are not replaced.
 */
export function endSpareThreads(): void {
  ended = true;
  for (const pool of pools.values()) {
    for (const spare of pool.idle.splice(0)) {
      spare.forget();
      void spare.worker.terminate();
    }
  }
}

/** Spares of `url` idle now. */
export function spareThreads(url: URL): number {
  return pools.get(url.href)?.idle.length ?? 0;
}

/**
 * A thread of the module at `url` running with `data`: a spare when one is idle (not replaced until
 * restockSpareThreads), a new thread otherwise. Referenced, like any new Worker.
 */
export function startThread(url: URL, data: unknown, transferList: TransferListItem[] = []): Worker {
  const spare = pools.get(url.href)?.idle.shift();
  if (spare === undefined) return new Worker(url, { workerData: data, transferList });
  spare.forget();
  spare.worker.ref();
  spare.worker.postMessage({ [SPARE_KEY]: data }, transferList);
  return spare.worker;
}

/** In a thread: the data it runs with (its workerData, or what startThread hands a spare). */
export async function threadData<T>(): Promise<T> {
  const given = workerData as Record<string, unknown> | null;
  if (given === null || typeof given !== 'object' || given[SPARE_KEY] !== true) return workerData as T;
  const port = parentPort;
  if (port === null) throw new Error('threadData() runs only in a worker thread');
  return new Promise<T>((resolve) => {
    const take = (msg: Record<string, unknown>): void => {
      if (!(SPARE_KEY in msg)) return;
      port.off('message', take);
      resolve(msg[SPARE_KEY] as T);
    };
    port.on('message', take);
  });
}
