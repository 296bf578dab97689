/**
 * The thread of ThreadHash (thread-hash.ts): keeps sha256 states by id and feeds them the bytes the
 * main thread hands over, so a build's whole-blob digests run beside its chunking and framing.
 */
import { createHash, type Hash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import type { HashReply, HashRequest } from './hash-protocol.js';

if (parentPort === null) throw new Error('hash-thread.ts runs only as a worker thread (see thread-hash.ts)');
const port = parentPort;
const states = new Map<number, Hash>();

port.on('message', (m: HashRequest) => {
  if (m.kind === 'update') {
    let h = states.get(m.id);
    if (h === undefined) {
      h = createHash('sha256');
      states.set(m.id, h);
    }
    h.update(new Uint8Array(m.bytes));
    return;
  }
  const h = states.get(m.id) ?? createHash('sha256');
  states.delete(m.id);
  const reply: HashReply = { id: m.id, hex: h.digest('hex') };
  port.postMessage(reply);
});
