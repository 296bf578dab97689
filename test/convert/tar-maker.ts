/**
 * Test helper: tar archives written header by header, so tests can make both ordinary layers and
 * malicious ones (`../` names, oversized headers, truncation) that real tar tools refuse to make.
 */
export interface HandEntry {
  name: string | Buffer;
  /** Tar typeflag: '0' file, '1' hardlink, '2' symlink, '3' chr, '4' blk, '5' dir, '6' fifo, 'x' PAX, 'L' long name... */
  type?: string;
  data?: Buffer | string;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  /** Size written in the header (default the data length). */
  size?: number;
}

function octal(n: number, len: number): string {
  return n.toString(8).padStart(len - 1, '0') + '\0';
}

export function tarHeader(e: HandEntry): Buffer {
  const h = Buffer.alloc(512);
  const name = typeof e.name === 'string' ? Buffer.from(e.name) : e.name;
  name.copy(h, 0, 0, Math.min(100, name.length));
  const type = e.type ?? '0';
  const data = e.data === undefined ? Buffer.alloc(0) : Buffer.from(e.data);
  h.write(octal(e.mode ?? (type === '5' ? 0o755 : 0o644), 8), 100, 'latin1');
  h.write(octal(e.uid ?? 0, 8), 108, 'latin1');
  h.write(octal(e.gid ?? 0, 8), 116, 'latin1');
  h.write(octal(e.size ?? data.length, 12), 124, 'latin1');
  h.write(octal(e.mtime ?? 1_700_000_000, 12), 136, 'latin1');
  h.write(type, 156, 'latin1');
  if (e.linkname) h.write(e.linkname, 157, 'latin1');
  h.write('ustar\0', 257, 'latin1');
  h.write('00', 263, 'latin1');
  h.write(octal(e.devmajor ?? 0, 8), 329, 'latin1');
  h.write(octal(e.devminor ?? 0, 8), 337, 'latin1');
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return h;
}

/** Header, data and padding of one entry. */
export function tarEntry(e: HandEntry): Buffer {
  const data = e.data === undefined ? Buffer.alloc(0) : Buffer.from(e.data);
  const pad = (512 - (data.length % 512)) % 512;
  return Buffer.concat([tarHeader(e), data, Buffer.alloc(pad)]);
}

/** A PAX extended header for the next entry. */
export function paxHeader(records: Record<string, string | Buffer>): Buffer {
  const parts: Buffer[] = [];
  for (const [k, v] of Object.entries(records)) {
    const body = Buffer.concat([Buffer.from(` ${k}=`), Buffer.from(v), Buffer.from('\n')]);
    let len = body.length + 1;
    while (String(len).length + body.length !== len) len = String(len).length + body.length;
    parts.push(Buffer.concat([Buffer.from(String(len)), body]));
  }
  return tarEntry({ name: 'PaxHeader', type: 'x', data: Buffer.concat(parts) });
}

export function makeTar(entries: (HandEntry | Buffer)[], options: { end?: boolean } = {}): Buffer {
  const parts = entries.map((e) => (Buffer.isBuffer(e) ? e : tarEntry(e)));
  if (options.end !== false) parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}
