/**
 * File bodies of one layer, appended to one spool file in the work directory as they stream out of
 * the tar, so no layer is ever held in memory. The merged tree refers to them by (offset, size).
 */
import { open, type FileHandle } from 'node:fs/promises';
import type { ContentReader, FileContent } from '../build/source.js';
import { fileWriteError } from '../util/errors.js';

const WRITE_BUFFER = 1 << 20;

export class LayerSpool {
  readonly path: string;
  private fh: FileHandle | undefined;
  private size = 0;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private closed = false;

  private constructor(path: string, fh: FileHandle) {
    this.path = path;
    this.fh = fh;
  }

  static async create(path: string): Promise<LayerSpool> {
    // 'wx': never reuse or follow an existing file in the work directory.
    return new LayerSpool(path, await open(path, 'wx+', 0o600));
  }

  /** Appends a body (each piece shown to `observe` first); returns where it lives. */
  async append(body: AsyncIterable<Buffer>, observe?: (piece: Buffer) => void): Promise<{ offset: number; size: number }> {
    const offset = this.size + this.pendingBytes;
    let n = 0;
    for await (const piece of body) {
      observe?.(piece);
      // Views of the stream's chunks, which nobody writes again (zlib hands out a new output buffer once
      // one is used up; fzstd's window views are copied in layer-stream.ts): flush copies them into one.
      this.pending.push(piece);
      this.pendingBytes += piece.length;
      n += piece.length;
      if (this.pendingBytes >= WRITE_BUFFER) await this.flush();
    }
    return { offset, size: n };
  }

  private async flush(): Promise<void> {
    if (this.pendingBytes === 0) return;
    const data = Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    let done = 0;
    try {
      while (done < data.length) {
        const { bytesWritten } = await this.fh!.write(data, done, data.length - done, this.size + done);
        done += bytesWritten;
      }
    } catch (err) {
      throw fileWriteError(err, 'the work file', this.path, this.size + done);
    }
    this.size += data.length;
  }

  /** Flushes; after this the spool is read-only. */
  async finish(): Promise<void> {
    await this.flush();
  }

  /** A provider for the bytes at [offset, offset+size). Valid after finish(), until close(). */
  content(offset: number, size: number): FileContent {
    return {
      size,
      open: async (): Promise<ContentReader> => ({
        read: (at, length) => this.read(offset + at, length),
        dataRegions: async () => null,
        close: async () => undefined,
      }),
    };
  }

  private async read(position: number, length: number): Promise<Buffer> {
    if (this.fh === undefined) throw new Error(`spool ${this.path} is closed`);
    const out = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.fh.read(out, done, length - done, position + done);
      if (bytesRead === 0) throw new Error(`spool ${this.path}: short read at ${position + done}`);
      done += bytesRead;
    }
    return out;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const fh = this.fh;
    this.fh = undefined;
    await fh?.close();
  }
}
