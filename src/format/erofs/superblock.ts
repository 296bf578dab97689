/** Encode/decode of the 128-byte superblock (§2). Validation is the reader's job. */
import { SB, UUID_SIZE, VOLUME_NAME_SIZE } from './layout.js';

export interface SuperblockFields {
  magic: number;
  checksum: number;
  featureCompat: number;
  blkszbits: number;
  sbExtslots: number;
  rootNid: number;
  inos: bigint;
  buildTime: bigint;
  buildTimeNsec: number;
  blocks: number;
  metaBlkaddr: number;
  xattrBlkaddr: number;
  uuid: Buffer;
  /** Raw 16 bytes. */
  volumeName: Buffer;
  featureIncompat: number;
  u1: number;
  extraDevices: number;
  devtSlotoff: number;
  dirblkbits: number;
  xattrPrefixCount: number;
  xattrPrefixStart: number;
  packedNid: bigint;
}

/** Write `sb` into `buf` at `at` (128 bytes; reserved bytes are zeroed). */
export function encodeSuperblock(sb: SuperblockFields, buf: Buffer, at: number): void {
  buf.fill(0, at, at + 128);
  buf.writeUInt32LE(sb.magic, at + SB.magic);
  buf.writeUInt32LE(sb.checksum, at + SB.checksum);
  buf.writeUInt32LE(sb.featureCompat, at + SB.featureCompat);
  buf.writeUInt8(sb.blkszbits, at + SB.blkszbits);
  buf.writeUInt8(sb.sbExtslots, at + SB.sbExtslots);
  buf.writeUInt16LE(sb.rootNid, at + SB.rootNid);
  buf.writeBigUInt64LE(sb.inos, at + SB.inos);
  buf.writeBigUInt64LE(BigInt.asUintN(64, sb.buildTime), at + SB.buildTime);
  buf.writeUInt32LE(sb.buildTimeNsec, at + SB.buildTimeNsec);
  buf.writeUInt32LE(sb.blocks, at + SB.blocks);
  buf.writeUInt32LE(sb.metaBlkaddr, at + SB.metaBlkaddr);
  buf.writeUInt32LE(sb.xattrBlkaddr, at + SB.xattrBlkaddr);
  sb.uuid.copy(buf, at + SB.uuid, 0, UUID_SIZE);
  sb.volumeName.copy(buf, at + SB.volumeName, 0, VOLUME_NAME_SIZE);
  buf.writeUInt32LE(sb.featureIncompat, at + SB.featureIncompat);
  buf.writeUInt16LE(sb.u1, at + SB.u1);
  buf.writeUInt16LE(sb.extraDevices, at + SB.extraDevices);
  buf.writeUInt16LE(sb.devtSlotoff, at + SB.devtSlotoff);
  buf.writeUInt8(sb.dirblkbits, at + SB.dirblkbits);
  buf.writeUInt8(sb.xattrPrefixCount, at + SB.xattrPrefixCount);
  buf.writeUInt32LE(sb.xattrPrefixStart, at + SB.xattrPrefixStart);
  buf.writeBigUInt64LE(sb.packedNid, at + SB.packedNid);
}

/** Read the superblock fields from `buf` at `at` (needs 128 bytes). build_time is read as signed. */
export function decodeSuperblock(buf: Buffer, at: number): SuperblockFields {
  return {
    magic: buf.readUInt32LE(at + SB.magic),
    checksum: buf.readUInt32LE(at + SB.checksum),
    featureCompat: buf.readUInt32LE(at + SB.featureCompat),
    blkszbits: buf.readUInt8(at + SB.blkszbits),
    sbExtslots: buf.readUInt8(at + SB.sbExtslots),
    rootNid: buf.readUInt16LE(at + SB.rootNid),
    inos: buf.readBigUInt64LE(at + SB.inos),
    buildTime: buf.readBigInt64LE(at + SB.buildTime),
    buildTimeNsec: buf.readUInt32LE(at + SB.buildTimeNsec),
    blocks: buf.readUInt32LE(at + SB.blocks),
    metaBlkaddr: buf.readUInt32LE(at + SB.metaBlkaddr),
    xattrBlkaddr: buf.readUInt32LE(at + SB.xattrBlkaddr),
    uuid: Buffer.from(buf.subarray(at + SB.uuid, at + SB.uuid + UUID_SIZE)),
    volumeName: Buffer.from(buf.subarray(at + SB.volumeName, at + SB.volumeName + VOLUME_NAME_SIZE)),
    featureIncompat: buf.readUInt32LE(at + SB.featureIncompat),
    u1: buf.readUInt16LE(at + SB.u1),
    extraDevices: buf.readUInt16LE(at + SB.extraDevices),
    devtSlotoff: buf.readUInt16LE(at + SB.devtSlotoff),
    dirblkbits: buf.readUInt8(at + SB.dirblkbits),
    xattrPrefixCount: buf.readUInt8(at + SB.xattrPrefixCount),
    xattrPrefixStart: buf.readUInt32LE(at + SB.xattrPrefixStart),
    packedNid: buf.readBigUInt64LE(at + SB.packedNid),
  };
}
