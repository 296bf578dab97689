/** The control socket: JSON lines, one request per line, answered in any order by `id`. */
import { chmodSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import type { ControlEnvelope, ControlRequest, ControlResponse } from './protocol.js';
import { toWire } from './wire-errors.js';
import { log } from '../util/log.js';

export type ControlHandler = (req: ControlRequest) => Promise<unknown>;

export function listenControl(path: string, handler: ControlHandler): Promise<Server> {
  rmSync(path, { force: true });
  const server = createServer((socket) => serveConnection(socket, handler));
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      chmodSync(path, 0o600);
      server.off('error', reject);
      resolve(server);
    });
  });
}

function serveConnection(socket: Socket, handler: ControlHandler): void {
  let buffered = '';
  socket.setEncoding('utf8');
  socket.on('error', () => undefined);
  socket.on('data', (chunk: string) => {
    buffered += chunk;
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (line.trim()) void answer(socket, line, handler);
    }
  });
}

async function answer(socket: Socket, line: string, handler: ControlHandler): Promise<void> {
  let id = 0;
  let response: ControlResponse;
  try {
    const env = JSON.parse(line) as ControlEnvelope;
    id = env.id;
    const { id: _id, ...req } = env;
    response = { id, ok: true, result: await handler(req as ControlRequest) };
  } catch (err) {
    log.info({ err: toWire(err) }, 'control request failed');
    response = { id, ok: false, error: toWire(err) };
  }
  if (!socket.destroyed) socket.write(JSON.stringify(response) + '\n');
}
