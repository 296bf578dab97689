/**
 * A fault-injecting HTTP proxy on 127.0.0.1 in front of a test registry. Requests pass through
 * untouched until a fault is armed; an armed fault hits the next `times` matching requests:
 * - `reset`: headers and `afterBytes` of the body, then a TCP reset;
 * - `status`: answer `status` (500/503/429...) with an optional Retry-After, without asking upstream
 *   (or any status, body and Content-Type: a manifest the real registry would refuse to store);
 * - `stall-headers`: never answer;
 * - `stall-body`: headers and `afterBytes`, then silence (connection kept open, or reset after `holdMs`);
 * - `truncate`: headers (with the full Content-Length) and `afterBytes`, then a clean close;
 * - `corrupt`: the full body with one byte flipped at `afterBytes`;
 * - `redirect`: 307 to `location` + the request path (blob storage elsewhere);
 * - `reset-request`: `afterBytes` of the request body forwarded, then a TCP reset of the client's
 *   connection (and the upstream request aborted): an upload cut off mid-chunk.
 * `skip` lets that many matching requests pass first (a fault on the Nth chunk of an upload).
 * Every request is recorded (method, path, status, whether it carried Authorization).
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { listenOnLoopback } from './registry.js';

export type FaultMode = 'reset' | 'status' | 'stall-headers' | 'stall-body' | 'truncate' | 'corrupt' | 'redirect' | 'reset-request';

export interface Fault {
  mode: FaultMode;
  /** Which requests: method + path tested against this (default: blob GETs). */
  match?: RegExp;
  /** How many matching requests to hit (default 1; Infinity for all). */
  times?: number;
  /** Matching requests to let through before the first hit (default 0). */
  skip?: number;
  status?: number;
  retryAfter?: string;
  /** For `status`: the body and Content-Type to answer with (default a registry error document). */
  body?: string;
  contentType?: string;
  /** Body bytes passed before the fault (default 1000). */
  afterBytes?: number;
  /** For `stall-body`: after this long, reset the connection (default: stay silent). */
  holdMs?: number;
  /** For `redirect`: origin to send the client to. */
  location?: string;
}

export interface RecordedRequest {
  method: string;
  path: string;
  status?: number;
  authorized: boolean;
  /** When the request's headers arrived (Date.now()). */
  at: number;
  contentRange?: string;
  range?: string;
  faulted?: FaultMode;
}

export interface FaultProxy {
  host: string;
  url: string;
  requests: RecordedRequest[];
  arm(fault: Fault): void;
  disarm(): void;
  /** Faults still to inject. */
  remaining(): number;
  stop(): Promise<void>;
}

const BLOB_GET = /^GET \/v2\/.+\/blobs\/sha256:/;

export async function startFaultProxy(upstream: string): Promise<FaultProxy> {
  const target = new URL(upstream);
  let fault: (Fault & { left: number; skipLeft: number }) | undefined;
  const requests: RecordedRequest[] = [];
  const sockets = new Set<Socket>();

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const rec: RecordedRequest = { method: req.method ?? 'GET', path: req.url ?? '/', authorized: req.headers.authorization !== undefined, at: Date.now() };
    if (typeof req.headers.range === 'string') rec.range = req.headers.range;
    if (typeof req.headers['content-range'] === 'string') rec.contentRange = req.headers['content-range'];
    requests.push(rec);
    let active: Fault | undefined;
    if (fault !== undefined && fault.left > 0 && (fault.match ?? BLOB_GET).test(`${rec.method} ${rec.path}`)) {
      if (fault.skipLeft > 0) fault.skipLeft--;
      else {
        fault.left--;
        active = fault;
        rec.faulted = fault.mode;
      }
    }
    const after = active?.afterBytes ?? 1000;

    if (active?.mode === 'status') {
      const headers: Record<string, string> = { 'content-type': active.contentType ?? 'application/json' };
      if (active.retryAfter !== undefined) headers['retry-after'] = active.retryAfter;
      rec.status = active.status ?? 503;
      req.resume();
      res.writeHead(rec.status, headers).end(active.body ?? '{"errors":[{"code":"UNAVAILABLE","message":"injected"}]}');
      return;
    }
    if (active?.mode === 'stall-headers') {
      req.resume();
      return; // never answer
    }
    if (active?.mode === 'redirect') {
      req.resume();
      rec.status = 307;
      res.writeHead(307, { location: `${active.location}${rec.path}` }).end();
      return;
    }

    const headers = { ...req.headers }; // keep Host: the registry builds upload Locations from it
    if (active?.mode === 'reset-request') {
      const up = httpRequest({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers });
      up.on('error', () => undefined);
      let passed = 0;
      req.on('data', (chunk: Buffer) => {
        if (passed >= after) return;
        const part = chunk.subarray(0, after - passed);
        passed += part.length;
        up.write(part);
        if (passed >= after) {
          up.destroy();
          req.socket.resetAndDestroy();
        }
      });
      return;
    }
    const up = httpRequest({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers }, (upRes) => {
      rec.status = upRes.statusCode ?? 0;
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      if (active === undefined || (upRes.statusCode ?? 0) >= 300) {
        upRes.pipe(res);
        return;
      }
      let sent = 0;
      let stopped = false;
      upRes.on('data', (chunk: Buffer) => {
        if (stopped) return;
        if (active!.mode === 'corrupt') {
          if (after >= sent && after < sent + chunk.length) {
            chunk = Buffer.from(chunk);
            chunk[after - sent] = chunk[after - sent]! ^ 0xff;
          }
          sent += chunk.length;
          res.write(chunk);
          return;
        }
        const room = after - sent;
        if (chunk.length < room) {
          sent += chunk.length;
          res.write(chunk);
          return;
        }
        stopped = true;
        if (room > 0) res.write(chunk.subarray(0, room));
        upRes.destroy();
        const sock = res.socket;
        if (active!.mode === 'reset') {
          // Let the partial body leave first, then reset.
          setTimeout(() => sock?.resetAndDestroy(), 20);
        } else if (active!.mode === 'truncate') {
          setTimeout(() => sock?.end(), 20);
        }
        else if (active!.holdMs !== undefined) setTimeout(() => sock?.resetAndDestroy(), active!.holdMs);
        // stall-body: say nothing more; the client's idle timeout must fire.
      });
      upRes.on('end', () => {
        if (!stopped) res.end();
      });
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  };

  const server: Server = createServer(handle);
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  const port = await listenOnLoopback(server);
  return {
    host: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}`,
    requests,
    arm: (f) => {
      fault = { ...f, left: f.times ?? 1, skipLeft: f.skip ?? 0 };
    },
    disarm: () => {
      fault = undefined;
    },
    remaining: () => fault?.left ?? 0,
    stop: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
