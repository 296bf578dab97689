/** Reader: superblock validation (§2, §3, §12) and the device table (§8). */
import { FormatError, type ErrorContext } from '../../util/errors.js';
import { checksumRange, superblockChecksum } from './crc32c.js';
import { decodeDeviceSlot } from './device-slot.js';
import {
  COMPAT_SB_CHKSUM, DEVICE_SLOT_SIZE, EROFS_MAGIC, INCOMPAT_DEVICE_TABLE, INCOMPAT_LINUX_6_1, MAX_BLKSZBITS,
  MIN_BLKSZBITS, SB_EXTSLOT_SIZE, SUPER_OFFSET, SUPER_SIZE,
} from './layout.js';
import type { DeviceSlot } from './model.js';
import type { ErofsSource } from './source.js';
import { decodeSuperblock, type SuperblockFields } from './superblock.js';

/** A device-table slot as read: the model's DeviceSlot plus the unified-address start. */
export interface DeviceSlotInfo extends DeviceSlot {
  /** Start of this device in the unified (flat) address space; 0 = not mapped. */
  mappedBlkaddr: number;
}

export interface ErofsSuperblock extends SuperblockFields {
  blockSize: number;
  /** Only when incompat DEVICE_TABLE is set (otherwise extra_devices means nothing): slot k-1 = device k. */
  devices: DeviceSlotInfo[];
  /** Volume name up to its NUL. */
  volumeLabel: string;
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

export function readSuperblock(src: ErofsSource, ctx: ErrorContext): ErofsSuperblock {
  if (src.size < SUPER_OFFSET + SUPER_SIZE) {
    throw new FormatError(`erofs: image of ${src.size} bytes is too small for a superblock`, ctx);
  }
  const raw = src.read(SUPER_OFFSET, SUPER_SIZE);
  const sb = decodeSuperblock(raw, 0);
  if (sb.magic !== EROFS_MAGIC) throw new FormatError(`erofs: bad magic ${hex(sb.magic)} (not an erofs image)`, ctx);
  if (sb.blkszbits < MIN_BLKSZBITS || sb.blkszbits > MAX_BLKSZBITS) {
    throw new FormatError(`erofs: unsupported block size 2^${sb.blkszbits}`, ctx);
  }
  const blockSize = 2 ** sb.blkszbits;
  if (sb.featureCompat & COMPAT_SB_CHKSUM) {
    const { start, end } = checksumRange(blockSize);
    if (end > src.size) throw new FormatError(`erofs: image of ${src.size} bytes is truncated inside the superblock block`, ctx);
    const want = superblockChecksum(src.read(start, end - start));
    if (want !== sb.checksum) {
      throw new FormatError(`erofs: bad superblock checksum ${hex(sb.checksum)} (computed ${hex(want)})`, ctx);
    }
  }
  const unknown = sb.featureIncompat & ~INCOMPAT_LINUX_6_1;
  if (unknown !== 0) throw new FormatError(`erofs: unsupported incompat features ${hex(unknown)}`, ctx);
  if (sb.dirblkbits !== 0) throw new FormatError(`erofs: unsupported dirblkbits ${sb.dirblkbits}`, ctx);
  if (SUPER_SIZE + SB_EXTSLOT_SIZE * sb.sbExtslots > blockSize) {
    throw new FormatError(`erofs: superblock extension slots ${sb.sbExtslots} exceed the block`, ctx);
  }
  if (!sb.volumeName.includes(0)) throw new FormatError('erofs: volume name is not NUL-terminated', ctx);

  const devices: DeviceSlotInfo[] = [];
  if (sb.featureIncompat & INCOMPAT_DEVICE_TABLE) {
    const start = sb.devtSlotoff * DEVICE_SLOT_SIZE;
    const end = start + sb.extraDevices * DEVICE_SLOT_SIZE;
    if (end > src.size) throw new FormatError(`erofs: device table (${sb.extraDevices} slots at byte ${start}) is past the end of the image`, ctx);
    const table = src.read(start, end - start);
    for (let i = 0; i < sb.extraDevices; i++) {
      const s = decodeDeviceSlot(table, i * DEVICE_SLOT_SIZE);
      devices.push({ tag: s.tag.toString('utf8'), blocks: s.blocks, mappedBlkaddr: s.mappedBlkaddr });
    }
  }
  const nul = sb.volumeName.indexOf(0);
  return { ...sb, blockSize, devices, volumeLabel: sb.volumeName.subarray(0, nul).toString('utf8') };
}
