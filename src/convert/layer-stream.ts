/**
 * A source layer's bytes → its uncompressed tar stream. The codec is sniffed from the first bytes
 * (gzip, zstd or plain tar; media types are often wrong). The compressed bytes are hashed on the
 * way through so the caller can check the layer digest, and the output is capped (gzip/zstd bombs).
 *
 * zstd uses fzstd (pure JavaScript, MIT, no dependencies): Node 20 has no zstd in node:zlib.
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { Decompress as ZstdDecompress } from 'fzstd';
import { FormatError } from '../util/errors.js';

export interface BombLimits {
  /** Most uncompressed bytes one layer may expand to. */
  maxLayerBytes: number;
  /** Most uncompressed bytes per compressed byte, checked once past `ratioGraceBytes`. */
  maxRatio: number;
  ratioGraceBytes: number;
}

export const DEFAULT_BOMB_LIMITS: BombLimits = { maxLayerBytes: 64 * 1024 ** 3, maxRatio: 400, ratioGraceBytes: 64 * 1024 ** 2 };

export type LayerCodec = 'gzip' | 'zstd' | 'none';

export interface LayerStream {
  /** The uncompressed tar bytes. */
  tar: AsyncIterable<Buffer>;
  /** Bytes so far (for progress). */
  progress(): { compressedBytes: number; uncompressedBytes: number };
  /** Known after `tar` has ended: `ALG:hex` digest of the compressed bytes, their count, and the codec. */
  result(): { digest: string; compressedBytes: number; uncompressedBytes: number; codec: LayerCodec };
}

const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);
const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);

export function openLayerStream(raw: Readable, what: string, limits: Partial<BombLimits> = {}, algorithm: 'sha256' | 'sha512' = 'sha256'): LayerStream {
  const lim = { ...DEFAULT_BOMB_LIMITS, ...limits };
  const hash = createHash(algorithm);
  let compressedBytes = 0;
  let uncompressedBytes = 0;
  let codec: LayerCodec | undefined;

  async function* run(): AsyncGenerator<Buffer> {
    const it = raw[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    // Sniff: gather at least 4 bytes (or the whole stream if shorter).
    const head: Buffer[] = [];
    let headLen = 0;
    while (headLen < 4) {
      const n = await it.next();
      if (n.done === true) break;
      head.push(n.value);
      headLen += n.value.length;
    }
    const first = Buffer.concat(head);
    codec = first.subarray(0, 2).equals(GZIP_MAGIC) ? 'gzip' : first.subarray(0, 4).equals(ZSTD_MAGIC) ? 'zstd' : 'none';
    const rest = (async function* () {
      if (first.length > 0) yield first;
      for (;;) {
        const n = await it.next();
        if (n.done === true) return;
        yield n.value;
      }
    })();
    const counted = countAndHash(rest, hash, (n) => (compressedBytes += n));

    const checkOut = (n: number): void => {
      uncompressedBytes += n;
      if (uncompressedBytes > lim.maxLayerBytes) {
        throw new FormatError(`${what}: expands beyond ${lim.maxLayerBytes} bytes (decompression bomb? raise --max-layer-size)`);
      }
      if (codec !== 'none' && uncompressedBytes > lim.ratioGraceBytes && uncompressedBytes > lim.maxRatio * Math.max(1, compressedBytes)) {
        throw new FormatError(`${what}: expands more than ${lim.maxRatio}:1 (${uncompressedBytes} bytes from ${compressedBytes}; decompression bomb? raise --max-ratio)`);
      }
    };

    if (codec === 'none') {
      for await (const chunk of counted) {
        checkOut(chunk.length);
        yield chunk;
      }
      return;
    }
    const decoder = codec === 'gzip' ? createGunzip({ chunkSize: 256 * 1024 }) : zstdTransform();
    const feeding = feed(counted, decoder);
    try {
      for await (const chunk of decoder as AsyncIterable<Buffer>) {
        checkOut(chunk.length);
        yield chunk;
      }
      await feeding;
    } catch (err) {
      decoder.destroy();
      raw.destroy();
      if (err instanceof FormatError) throw err;
      throw new FormatError(`${what}: malformed ${codec} data: ${(err as Error).message}`, {}, { cause: err });
    } finally {
      feeding.catch(() => undefined);
    }
  }

  let digest: string | undefined;
  return {
    tar: run(),
    progress: () => ({ compressedBytes, uncompressedBytes }),
    result: () => ({ digest: (digest ??= `${algorithm}:${hash.digest('hex')}`), compressedBytes, uncompressedBytes, codec: codec ?? 'none' }),
  };
}

async function* countAndHash(input: AsyncIterable<Buffer>, hash: Hash, count: (n: number) => void): AsyncGenerator<Buffer> {
  for await (const chunk of input) {
    hash.update(chunk);
    count(chunk.length);
    yield chunk;
  }
}

/** Writes an async source into a stream with back-pressure, then ends it. Errors destroy it. */
async function feed(input: AsyncIterable<Buffer>, into: Transform): Promise<void> {
  try {
    for await (const chunk of input) {
      if (into.destroyed) return;
      if (!into.write(chunk)) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            into.off('drain', done);
            into.off('close', done);
            resolve();
          };
          into.on('drain', done);
          into.on('close', done);
        });
      }
    }
    into.end();
  } catch (err) {
    into.destroy(err as Error);
  }
}

function zstdTransform(): Transform {
  // The decoder is made after the stream (its callback pushes into it) and before any chunk arrives.
  // eslint-disable-next-line prefer-const
  let dec: ZstdDecompress;
  const t = new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      try {
        dec.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
        cb();
      } catch (err) {
        cb(err as Error);
      }
    },
    flush(cb: TransformCallback) {
      try {
        dec.push(new Uint8Array(0), true);
        cb();
      } catch (err) {
        cb(err as Error);
      }
    },
  });
  const sink = t;
  // fzstd may hand out views of its window buffer: copy before passing on.
  dec = new ZstdDecompress((data) => {
    sink.push(Buffer.from(data));
  });
  return t;
}
