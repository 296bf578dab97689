/**
 * Several ranges of one blob: merging near spans, and one GET asking for many ranges (answered as
 * multipart/byteranges parts, or refused with the whole blob).
 */
import { OndemandError } from '../util/errors.js';
import { repositoryScope } from './auth.js';
import { statusError } from './errors.js';
import { discardBody, header, readBody, type HttpResponse } from './http.js';
import { byterangesBoundary, parseByteranges, parseContentRange, type RangePart } from './multipart.js';
import type { RetryBudget } from './retry.js';
import type { RegistryConnection } from './send.js';

export interface ByteSpan {
  offset: number;
  length: number;
}

export type MultiRangeAnswer = { parts: Map<ByteSpan, Buffer> } | 'whole-blob' | undefined;

/** Ranges asked for in one multi-range request. */
export const MULTI_RANGE_BATCH = 32;

/**
 * One multi-range GET. `parts` may lack groups (fetch those singly); `whole-blob`: the server ignores
 * multi-range requests; undefined: this one failed, fall back to single ranges.
 */
export async function requestMultiRange(conn: RegistryConnection, repository: string, digest: string, groups: ByteSpan[], budget: RetryBudget): Promise<MultiRangeAnswer> {
  const rangeHeader = 'bytes=' + groups.map((g) => `${g.offset}-${g.offset + g.length - 1}`).join(',');
  let res: HttpResponse;
  try {
    ({ res } = await conn.send({ method: 'GET', path: `/v2/${repository}/blobs/${digest}`, headers: { range: rangeHeader }, scopes: [repositoryScope(repository, 'pull')], budget, retry: false }));
  } catch (err) {
    if (budget.signal.aborted) throw budget.abortError();
    if (err instanceof OndemandError && err.code !== 'EFETCH') throw err;
    return undefined; // network trouble: single ranges resume better
  }
  if (res.status === 200) {
    res.body.destroy(); // the server sends the whole blob: the caller stops asking this registry
    return 'whole-blob';
  }
  if (res.status === 404) throw await statusError(res, `blob ${digest} in ${conn.registry}/${repository}`, { blob: digest });
  if (res.status !== 206) {
    await discardBody(res);
    return undefined;
  }
  const expected = groups.reduce((s, g) => s + g.length, 0);
  let parts: RangePart[];
  try {
    const body = await readBody(res, expected + groups.length * 512 + 4096);
    const boundary = byterangesBoundary(header(res, 'content-type'));
    if (boundary !== undefined) {
      parts = parseByteranges(body, boundary);
    } else {
      const cr = parseContentRange(header(res, 'content-range'));
      if (cr === undefined || cr.end - cr.start + 1 !== body.length) return undefined;
      parts = [{ start: cr.start, data: body }];
    }
  } catch {
    if (budget.signal.aborted) throw budget.abortError();
    return undefined;
  }
  const out = new Map<ByteSpan, Buffer>();
  for (const g of groups) {
    const part = parts.find((p) => g.offset >= p.start && g.offset + g.length <= p.start + p.data.length);
    if (part !== undefined) out.set(g, part.data.subarray(g.offset - part.start, g.offset - part.start + g.length));
  }
  return { parts: out };
}

/** Sorted, merged spans covering every input span (gap: merge spans at most this far apart). */
export function mergeSpans(spans: ByteSpan[], gap: number): ByteSpan[] {
  const sorted = [...spans].filter((s) => s.length > 0).sort((a, b) => a.offset - b.offset);
  const out: ByteSpan[] = [];
  for (const s of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && s.offset <= last.offset + last.length + gap) {
      last.length = Math.max(last.length, s.offset + s.length - last.offset);
    } else {
      out.push({ offset: s.offset, length: s.length });
    }
  }
  // Zero-length spans still need a group to slice from.
  for (const s of spans) {
    if (s.length === 0 && !out.some((g) => s.offset >= g.offset && s.offset <= g.offset + g.length)) out.push({ offset: s.offset, length: 0 });
  }
  return out;
}

export async function mapLimit<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const item = items[next++]!;
      await fn(item);
    }
  });
  await Promise.all(workers);
}
