/**
 * An incremental sha256 computed on a thread of its own (one for the process, made on first use): a
 * build hashes each blob's whole view and stored bytes there while the main thread chunks, hashes
 * chunks and frames and writes. Updates are copies handed over in order; digest() waits for the rest.
 */
import { Worker } from 'node:worker_threads';
import { compiledThreadUrl } from '../util/thread-url.js';
import type { HashReply, HashRequest } from './hash-protocol.js';

interface Shared {
  worker: Worker;
  nextId: number;
  waiting: Map<number, (hex: string) => void>;
}

let shared: Shared | undefined;

function thread(): Shared {
  if (shared) return shared;
  const worker = new Worker(compiledThreadUrl(import.meta.url, 'hash-thread.js', 'EBUILD'));
  const s: Shared = { worker, nextId: 1, waiting: new Map() };
  worker.on('message', (r: HashReply) => {
    const done = s.waiting.get(r.id);
    s.waiting.delete(r.id);
    if (s.waiting.size === 0) worker.unref();
    done?.(r.hex);
  });
  worker.on('error', (err) => {
    // Every digest still waited for fails with it; the next ThreadHash starts a new thread.
    for (const done of s.waiting.values()) done(`error: ${err.message}`);
    s.waiting.clear();
    if (shared === s) shared = undefined;
  });
  worker.unref();
  shared = s;
  return s;
}

export class ThreadHash {
  private readonly t = thread();
  private readonly id = this.t.nextId++;

  update(bytes: Buffer): void {
    if (bytes.length === 0) return;
    const copy = new ArrayBuffer(bytes.length);
    new Uint8Array(copy).set(bytes);
    const m: HashRequest = { kind: 'update', id: this.id, bytes: copy };
    this.t.worker.postMessage(m, [copy]);
  }

  /** Hex digest of everything updated; the stream ends. */
  async digest(): Promise<string> {
    const hex = await new Promise<string>((resolve) => {
      this.t.waiting.set(this.id, resolve);
      this.t.worker.ref();
      const m: HashRequest = { kind: 'digest', id: this.id };
      this.t.worker.postMessage(m);
    });
    if (hex.startsWith('error: ')) throw new Error(`sha256 thread failed: ${hex.slice(7)}`);
    return hex;
  }
}
