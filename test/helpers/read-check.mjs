// A reader for fault tests, run as a child process so that a hung read cannot hang the test (the
// parent kills it at its deadline and counts every read without an answer as hung).
// argv[2]: JSON array of { id, path, source, ranges } — ranges [[offset, length], ...] are read with
// pread; null reads the whole file. Every read compares each byte with the same bytes of `source`.
// Prints one JSON line per read as soon as it ends: { id, outcome, code?, detail? } with outcome
//   right        every byte equal to the source
//   error        the read failed (code: EIO, ENOTCONN, ...): what a program sees
//   zero-filled  differs from the source, and every differing byte read is 0
//   wrong        any other difference (other bytes, a short or long file)
import { open } from 'node:fs/promises';

const CHUNK = 1024 * 1024;

/** Where `got` differs from `want`: undefined when equal, else whether all differing bytes are 0. */
function compare(got, want) {
  if (got.equals(want)) return undefined;
  let first = -1;
  let allZero = true;
  for (let i = 0; i < got.length; i++) {
    if (got[i] === want[i]) continue;
    if (first < 0) first = i;
    if (got[i] !== 0) {
      allZero = false;
      break;
    }
  }
  return { first, allZero };
}

/** Reads exactly `length` bytes at `offset` (fewer only at end of file). */
async function preadFully(fh, offset, length) {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, offset + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return buf.subarray(0, done);
}

async function checkOne(read) {
  const mounted = await open(read.path, 'r');
  const source = await open(read.source, 'r');
  try {
    const size = (await source.stat()).size;
    const ranges = read.ranges ?? [];
    if (read.ranges === null) {
      for (let off = 0; off < size; off += CHUNK) ranges.push([off, Math.min(CHUNK, size - off)]);
      ranges.push([size, 1]); // nothing may follow the source's last byte
    }
    for (const [offset, length] of ranges) {
      const got = await preadFully(mounted, offset, length);
      const want = await preadFully(source, offset, length);
      if (got.length !== want.length) return { outcome: 'wrong', detail: `read ${got.length} bytes at ${offset}, source has ${want.length}` };
      const diff = compare(got, want);
      if (diff !== undefined) {
        return { outcome: diff.allZero ? 'zero-filled' : 'wrong', detail: `first difference at ${offset + diff.first} (range ${offset}+${length})` };
      }
    }
    return { outcome: 'right' };
  } finally {
    await mounted.close().catch(() => undefined);
    await source.close();
  }
}

const reads = JSON.parse(process.argv[2]);
await Promise.all(reads.map(async (read) => {
  let result;
  try {
    result = await checkOne(read);
  } catch (err) {
    result = { outcome: 'error', code: err.code ?? 'unknown', detail: String(err.message ?? err) };
  }
  process.stdout.write(JSON.stringify({ id: read.id, ...result }) + '\n');
}));
