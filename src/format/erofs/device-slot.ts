/** Encode/decode of a 128-byte device-table slot (§8.1). */
import { DEVICE_SLOT, DEVICE_SLOT_SIZE, DEVICE_TAG_SIZE } from './layout.js';

export interface DeviceSlotFields {
  /** Raw tag bytes up to the first NUL (at most 64). */
  tag: Buffer;
  blocks: number;
  mappedBlkaddr: number;
}

export function encodeDeviceSlot(s: DeviceSlotFields, buf: Buffer, at: number): void {
  buf.fill(0, at, at + DEVICE_SLOT_SIZE);
  s.tag.copy(buf, at + DEVICE_SLOT.tag, 0, Math.min(s.tag.length, DEVICE_TAG_SIZE));
  buf.writeUInt32LE(s.blocks >>> 0, at + DEVICE_SLOT.blocks);
  buf.writeUInt32LE(s.mappedBlkaddr >>> 0, at + DEVICE_SLOT.mappedBlkaddr);
}

export function decodeDeviceSlot(buf: Buffer, at: number): DeviceSlotFields {
  const raw = buf.subarray(at + DEVICE_SLOT.tag, at + DEVICE_SLOT.tag + DEVICE_TAG_SIZE);
  const nul = raw.indexOf(0);
  return {
    tag: Buffer.from(nul < 0 ? raw : raw.subarray(0, nul)),
    blocks: buf.readUInt32LE(at + DEVICE_SLOT.blocks),
    mappedBlkaddr: buf.readUInt32LE(at + DEVICE_SLOT.mappedBlkaddr),
  };
}
