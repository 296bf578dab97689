/** Frames that do not compress go in gzip's stored blocks: still gzip, about their own size, cheap to make. */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { BlobWriter, compressesWell } from './blob-writer.js';

const MiB = 1024 * 1024;
const dir = mkdtempSync(join(tmpdir(), 'blob-writer-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('BlobWriter gzip frames', () => {
  it('deflates a frame that compresses, stores one that does not; both decode to their bytes', async () => {
    const random = randomBytes(MiB);
    const text = Buffer.from('the same line of text, again and again\n'.repeat(Math.ceil(MiB / 39))).subarray(0, MiB);
    expect(compressesWell(random)).toBe(false);
    expect(compressesWell(text)).toBe(true);
    const w = new BlobWriter(join(dir, 'blob'), { frameSize: MiB, compression: 'gzip', gzipLevel: 1 });
    await w.appendChunk(random);
    await w.appendChunk(text);
    const built = await w.finish();
    const stored = readFileSync(built.path);
    const [r, t] = built.toc.frames;
    expect(r!.compressedSize).toBeGreaterThan(MiB);
    expect(r!.compressedSize).toBeLessThan(MiB * 1.001); // stored blocks: 5 bytes per 64 KiB and the gzip wrapper
    expect(t!.compressedSize).toBeLessThan(MiB / 20);
    expect(gunzipSync(stored.subarray(r!.compressedOffset, r!.compressedOffset + r!.compressedSize)).equals(random)).toBe(true);
    expect(gunzipSync(stored.subarray(t!.compressedOffset, t!.compressedOffset + t!.compressedSize)).equals(text)).toBe(true);
  });
});
