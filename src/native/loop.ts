/** LOOP_CHANGE_FD: the one loop-device ioctl ondemand makes itself (losetup attaches and detaches). */
import { open } from 'node:fs/promises';
import { ioctlInt, koffi, sysError, type WithAsync } from './libc.js';

const LOOP_CHANGE_FD = 0x4c06;

/**
 * Switches a read-only loop device to another backing file of the same size (LOOP_CHANGE_FD);
 * the kernel refuses it for writable loops.
 */
export function loopChangeFd(loopFd: number, newBackingFd: number, device: string): void {
  if (ioctlInt(loopFd, LOOP_CHANGE_FD, newBackingFd) !== 0) throw sysError('ioctl(LOOP_CHANGE_FD)', device, koffi.errno());
}

const ioctlIntAsync = ioctlInt as unknown as WithAsync<[fd: number, request: number, arg: number], number>;

/**
 * loopChangeFd with both files opened and the ioctl made off this thread: for a process that serves
 * the new backing file itself (a FUSE file), whose opening and the fsync the loop driver makes of it
 * must be answered by this thread meanwhile.
 */
export async function loopChangeFileAsync(device: string, file: string): Promise<void> {
  const loop = await open(device, 'r');
  try {
    const backing = await open(file, 'r');
    try {
      await new Promise<void>((resolve, reject) => {
        ioctlIntAsync.async(loop.fd, LOOP_CHANGE_FD, backing.fd, (err: unknown, res: number) => {
          if (err) reject(err instanceof Error ? err : new Error(`ioctl(LOOP_CHANGE_FD) ${device}: ${JSON.stringify(err)}`));
          else if (res !== 0) reject(new Error(`ioctl(LOOP_CHANGE_FD) ${device} to ${file} failed`));
          else resolve();
        });
      });
    } finally {
      await backing.close();
    }
  } finally {
    await loop.close();
  }
}
