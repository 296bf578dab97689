/** A start-up trace carried in a manifest annotation: round trip, and bad values refused in one line. */
import { describe, expect, it } from 'vitest';
import { gzipSync } from 'node:zlib';
import { TRACE_VERSION, traceAnnotation, traceFromAnnotation, type StartupTrace } from './trace.js';

const blob = `sha256:${'ab'.repeat(32)}`;
const trace: StartupTrace = {
  version: TRACE_VERSION, manifestDigest: `sha256:${'cd'.repeat(32)}`, recordedAt: '2026-12-04T00:00:00.000Z', seconds: 10,
  ranges: Array.from({ length: 500 }, (_, i) => ({ blob, offset: i * 2 * 1048576, length: 1048576 })),
};

describe('start-up trace annotation', () => {
  it('round-trips, compactly (500 ranges in a few KiB)', () => {
    const value = traceAnnotation(trace);
    expect(value.length).toBeLessThan(8 * 1024);
    expect(traceFromAnnotation(value, 'annotation')).toEqual(trace);
  });

  it('refuses what is not gzip and base64, or not a trace', () => {
    expect(() => traceFromAnnotation('not base64 gzip', 'the annotation')).toThrow(/the annotation: not gzip and base64/);
    const notTrace = gzipSync(Buffer.from(JSON.stringify({ version: 99 }))).toString('base64');
    expect(() => traceFromAnnotation(notTrace, 'the annotation')).toThrow(/not a version 1 start-up trace/);
  });
});
