/** LOOP_CHANGE_FD: the one loop-device ioctl ondemand makes itself (losetup attaches and detaches). */
import { ioctlInt, koffi, sysError } from './libc.js';

const LOOP_CHANGE_FD = 0x4c06;

/**
 * Switches a read-only loop device to another backing file of the same size (LOOP_CHANGE_FD);
 * the kernel refuses it for writable loops.
 */
export function loopChangeFd(loopFd: number, newBackingFd: number, device: string): void {
  if (ioctlInt(loopFd, LOOP_CHANGE_FD, newBackingFd) !== 0) throw sysError('ioctl(LOOP_CHANGE_FD)', device, koffi.errno());
}
