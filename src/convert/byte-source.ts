/**
 * Pull-style reading of exact byte counts from an async stream of chunks (a decompressed layer).
 * Nothing is buffered beyond the chunk at hand: bodies are handed on piece by piece.
 */
const EMPTY = Buffer.alloc(0);

export class ByteSource {
  private readonly it: AsyncIterator<Buffer | Uint8Array | string>;
  private buf: Buffer = EMPTY;
  private pos = 0;
  private ended = false;
  /** Bytes consumed so far (the offset of the next byte in the stream). */
  offset = 0;

  constructor(input: AsyncIterable<Buffer | Uint8Array | string>) {
    this.it = input[Symbol.asyncIterator]();
  }

  private async fill(): Promise<boolean> {
    while (this.pos >= this.buf.length) {
      if (this.ended) return false;
      const next = await this.it.next();
      if (next.done === true) {
        this.ended = true;
        return false;
      }
      const v = next.value;
      this.buf = typeof v === 'string' ? Buffer.from(v) : Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
      this.pos = 0;
    }
    return true;
  }

  /**
   * Exactly `n` bytes; null when the stream ends before the first byte. `short` is called (and
   * must throw) when it ends after some but not all of them.
   */
  async readExact(n: number, short: (got: number) => never): Promise<Buffer | null> {
    if (!(await this.fill())) return null;
    if (this.buf.length - this.pos >= n) {
      const out = this.buf.subarray(this.pos, this.pos + n);
      this.pos += n;
      this.offset += n;
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      if (!(await this.fill())) short(got);
      const take = Math.min(n - got, this.buf.length - this.pos);
      this.buf.copy(out, got, this.pos, this.pos + take);
      this.pos += take;
      got += take;
      this.offset += take;
    }
    return out;
  }

  /** Up to `max` bytes (at least one), or null at the end of the stream. Views into the chunk. */
  async readSome(max: number): Promise<Buffer | null> {
    if (!(await this.fill())) return null;
    const take = Math.min(max, this.buf.length - this.pos);
    const out = this.buf.subarray(this.pos, this.pos + take);
    this.pos += take;
    this.offset += take;
    return out;
  }

  /** Reads and drops everything left (so a decompressor checks its trailer). */
  async drain(): Promise<number> {
    let n = 0;
    for (;;) {
      const some = await this.readSome(1 << 20);
      if (some === null) return n;
      n += some.length;
    }
  }
}
