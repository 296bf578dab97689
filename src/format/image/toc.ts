/** Encodes and decodes a blob TOC (layout in toc-layout.ts), checking every field of untrusted input. */
import { FormatError } from '../../util/errors.js';
import type { BlobToc, Compression, FrameEntry } from './types.js';
import {
  COMPRESSION_CODES, TOC_ENTRY, TOC_ENTRY_SIZE, TOC_HEADER, TOC_HEADER_SIZE, TOC_MAGIC, TOC_MAX_FRAMES, TOC_VERSION,
} from './toc-layout.js';

export function encodeToc(toc: BlobToc): Buffer {
  const buf = Buffer.alloc(TOC_HEADER_SIZE + TOC_ENTRY_SIZE * toc.frames.length);
  TOC_MAGIC.copy(buf, TOC_HEADER.magic);
  buf.writeUInt32LE(TOC_VERSION, TOC_HEADER.version);
  buf.writeUInt32LE(toc.frames.length, TOC_HEADER.frameCount);
  buf.writeBigUInt64LE(BigInt(toc.uncompressedSize), TOC_HEADER.uncompressedSize);
  buf.writeUInt32LE(toc.frameSize, TOC_HEADER.frameSize);
  buf.writeUInt8(COMPRESSION_CODES[toc.compression], TOC_HEADER.compression);
  Buffer.from(toc.blobId, 'hex').copy(buf, TOC_HEADER.blobId);
  toc.frames.forEach((f, i) => {
    const at = TOC_HEADER_SIZE + i * TOC_ENTRY_SIZE;
    buf.writeBigUInt64LE(BigInt(f.uncompressedOffset), at + TOC_ENTRY.uncompressedOffset);
    buf.writeUInt32LE(f.uncompressedSize, at + TOC_ENTRY.uncompressedSize);
    buf.writeBigUInt64LE(BigInt(f.compressedOffset), at + TOC_ENTRY.compressedOffset);
    buf.writeUInt32LE(f.compressedSize, at + TOC_ENTRY.compressedSize);
    Buffer.from(f.digest, 'hex').copy(buf, at + TOC_ENTRY.digest);
  });
  return buf;
}

/**
 * Decodes a TOC. `storedSize` is the size of the stored blob the frames must lie in (before the TOC).
 * Throws FormatError naming the first inconsistency; never returns a TOC that does not tile its blob.
 */
export function decodeToc(buf: Buffer, context: { blob?: string; storedSize?: number } = {}): BlobToc {
  const ctx = { blob: context.blob };
  const fail = (what: string): never => {
    throw new FormatError(`bad blob table of contents: ${what}`, ctx);
  };
  if (buf.length < TOC_HEADER_SIZE) fail(`${buf.length} bytes is shorter than the header`);
  if (!buf.subarray(0, TOC_MAGIC.length).equals(TOC_MAGIC)) fail('wrong magic');
  const version = buf.readUInt32LE(TOC_HEADER.version);
  if (version !== TOC_VERSION) fail(`unsupported version ${version}`);
  const count = buf.readUInt32LE(TOC_HEADER.frameCount);
  if (count > TOC_MAX_FRAMES) fail(`${count} frames is too many`);
  if (buf.length !== TOC_HEADER_SIZE + count * TOC_ENTRY_SIZE) fail(`length ${buf.length} does not fit ${count} frames`);
  const uncompressedSize = safeNumber(buf.readBigUInt64LE(TOC_HEADER.uncompressedSize), fail);
  const frameSize = buf.readUInt32LE(TOC_HEADER.frameSize);
  if (frameSize === 0 || frameSize % 4096 !== 0) fail(`frame size ${frameSize} is not a positive multiple of 4096`);
  const code = buf.readUInt8(TOC_HEADER.compression);
  const compression = (Object.keys(COMPRESSION_CODES) as Compression[]).find((c) => COMPRESSION_CODES[c] === code);
  if (compression === undefined) fail(`unknown compression code ${code}`);
  const blobId = buf.subarray(TOC_HEADER.blobId, TOC_HEADER.blobId + 32).toString('hex');
  if (Math.ceil(uncompressedSize / frameSize) !== count) fail(`${count} frames do not cover ${uncompressedSize} bytes`);

  const frames: FrameEntry[] = [];
  let expectOffset = 0;
  for (let i = 0; i < count; i++) {
    const at = TOC_HEADER_SIZE + i * TOC_ENTRY_SIZE;
    const f: FrameEntry = {
      uncompressedOffset: safeNumber(buf.readBigUInt64LE(at + TOC_ENTRY.uncompressedOffset), fail),
      uncompressedSize: buf.readUInt32LE(at + TOC_ENTRY.uncompressedSize),
      compressedOffset: safeNumber(buf.readBigUInt64LE(at + TOC_ENTRY.compressedOffset), fail),
      compressedSize: buf.readUInt32LE(at + TOC_ENTRY.compressedSize),
      digest: buf.subarray(at + TOC_ENTRY.digest, at + TOC_ENTRY.digest + 32).toString('hex'),
    };
    const expectSize = Math.min(frameSize, uncompressedSize - expectOffset);
    if (f.uncompressedOffset !== expectOffset || f.uncompressedSize !== expectSize) {
      fail(`frame ${i} covers [${f.uncompressedOffset}, +${f.uncompressedSize}), expected [${expectOffset}, +${expectSize})`);
    }
    if (f.compressedSize === 0) fail(`frame ${i} has no stored bytes`);
    if (compression === 'none' && f.compressedSize !== f.uncompressedSize) fail(`frame ${i} stored size differs without compression`);
    if (context.storedSize !== undefined && f.compressedOffset + f.compressedSize > context.storedSize) {
      fail(`frame ${i} lies past the end of the blob`);
    }
    frames.push(f);
    expectOffset += f.uncompressedSize;
  }
  return { blobId, uncompressedSize, frameSize, compression: compression as Compression, frames };
}

function safeNumber(v: bigint, fail: (what: string) => never): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(`value ${v} is out of range`);
  return Number(v);
}

/** Index of the frame holding uncompressed offset `offset`. */
export function frameIndexAt(toc: BlobToc, offset: number): number {
  return Math.floor(offset / toc.frameSize);
}
