/**
 * `multipart/byteranges` bodies (RFC 9110 §14.6): the answer to a multi-range request. Parts are read
 * by their Content-Range length, not by searching for the boundary (data may contain it).
 */
import { FetchError } from '../util/errors.js';

export interface RangePart {
  /** First byte offset in the blob. */
  start: number;
  data: Buffer;
}

/** `bytes START-END/TOTAL` → [start, end] inclusive. */
export function parseContentRange(value: string | undefined): { start: number; end: number; total?: number } | undefined {
  if (value === undefined) return undefined;
  const m = /^\s*bytes\s+([0-9]+)-([0-9]+)\/([0-9]+|\*)\s*$/i.exec(value);
  if (!m) return undefined;
  const r: { start: number; end: number; total?: number } = { start: Number(m[1]), end: Number(m[2]) };
  if (m[3] !== '*') r.total = Number(m[3]);
  return r.end >= r.start ? r : undefined;
}

/** The boundary parameter of a `multipart/byteranges; boundary=...` content type, if it is one. */
export function byterangesBoundary(contentType: string | undefined): string | undefined {
  if (contentType === undefined || !/^\s*multipart\/byteranges\b/i.test(contentType)) return undefined;
  const m = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  return m ? (m[1] ?? m[2]) : undefined;
}

export function parseByteranges(body: Buffer, boundary: string): RangePart[] {
  const delimiter = Buffer.from(`--${boundary}`);
  const parts: RangePart[] = [];
  let pos = body.indexOf(delimiter);
  if (pos < 0) throw new FetchError('multipart/byteranges body without its boundary');
  for (;;) {
    pos += delimiter.length;
    if (body[pos] === 0x2d && body[pos + 1] === 0x2d) return parts; // closing "--"
    const headerEnd = body.indexOf('\r\n\r\n', pos);
    if (headerEnd < 0) throw new FetchError('multipart/byteranges part without a header end');
    const headerText = body.subarray(pos, headerEnd).toString('latin1');
    let range: ReturnType<typeof parseContentRange>;
    for (const line of headerText.split('\r\n')) {
      const colon = line.indexOf(':');
      if (colon > 0 && line.slice(0, colon).trim().toLowerCase() === 'content-range') range = parseContentRange(line.slice(colon + 1));
    }
    if (range === undefined) throw new FetchError('multipart/byteranges part without a valid Content-Range');
    const dataStart = headerEnd + 4;
    const dataEnd = dataStart + (range.end - range.start + 1);
    if (dataEnd > body.length) throw new FetchError('multipart/byteranges part shorter than its Content-Range');
    parts.push({ start: range.start, data: body.subarray(dataStart, dataEnd) });
    const next = body.indexOf(delimiter, dataEnd);
    if (next < 0 || next > dataEnd + 4) throw new FetchError('multipart/byteranges part longer than its Content-Range');
    pos = next;
  }
}
