/**
 * Unix sockets: a connected pair and receiving a file descriptor over one (SCM_RIGHTS: what fusermount3
 * hands back), and one datagram to a named socket, with file descriptors if any (sd_notify's FDSTORE).
 */
import { koffi, libc, errno } from './libc.js';

const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;
/** struct cmsghdr: size_t len, int level, int type, then the data (8-byte aligned on 64-bit). */
const CMSG_HEADER = 16;

const socketpairRaw = libc.func('int socketpair(int domain, int type, int protocol, _Out_ int *sv)') as (d: number, t: number, p: number, sv: Int32Array) => number;
koffi.struct('ondemand_iovec', { base: 'void *', len: 'size_t' });
koffi.struct('ondemand_msghdr', {
  name: 'void *', namelen: 'uint32', iov: 'ondemand_iovec *', iovlen: 'size_t', control: 'void *', controllen: 'size_t', flags: 'int',
});
interface MsgHdr {
  name: null; namelen: number; iov: { base: Buffer; len: number }[]; iovlen: number; control: Buffer; controllen: number; flags: number;
}
const recvmsgRaw = libc.func('long recvmsg(int fd, ondemand_msghdr *msg, int flags)') as (fd: number, msg: MsgHdr, flags: number) => number;

/** [ours, theirs], both close-on-exec (a child gets its end through spawn's stdio, which clears the flag); or a negative errno. */
export function unixSocketPair(): [number, number] | number {
  const sv = new Int32Array(2);
  return socketpairRaw(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) === 0 ? [sv[0]!, sv[1]!] : -errno();
}

/** Receives one message carrying a file descriptor; the fd, or a negative errno (-EBADMSG when none came). */
export function receiveFd(sock: number): number {
  const control = Buffer.alloc(64);
  const msg: MsgHdr = { name: null, namelen: 0, iov: [{ base: Buffer.alloc(8), len: 8 }], iovlen: 1, control, controllen: control.length, flags: 0 };
  if (recvmsgRaw(sock, msg, 0) < 0) return -errno();
  if (control.readBigUInt64LE(0) < BigInt(CMSG_HEADER + 4) || control.readInt32LE(8) !== SOL_SOCKET || control.readInt32LE(12) !== SCM_RIGHTS) return -74;
  return control.readInt32LE(CMSG_HEADER);
}

const SOCK_DGRAM = 2;
const socketRaw = libc.func('int socket(int domain, int type, int protocol)') as (d: number, t: number, p: number) => number;
const closeRaw = libc.func('int close(int fd)') as (fd: number) => number;
interface MsgHdrTo {
  name: Buffer; namelen: number; iov: { base: Buffer; len: number }[]; iovlen: number; control: Buffer | null; controllen: number; flags: number;
}
const sendmsgRaw = libc.func('long sendmsg(int fd, const ondemand_msghdr *msg, int flags)') as (fd: number, msg: MsgHdrTo, flags: number) => number;

/** sockaddr_un of `path` ('@name': the abstract namespace), or null when too long. */
function unixAddress(path: string): Buffer | null {
  const name = Buffer.from(path.startsWith('@') ? `\0${path.slice(1)}` : path);
  if (name.length > 107) return null;
  const addr = Buffer.alloc(2 + name.length + (path.startsWith('@') ? 0 : 1));
  addr.writeUInt16LE(AF_UNIX, 0);
  name.copy(addr, 2);
  return addr;
}

/** One datagram to a Unix socket at `path` ('@name': the abstract namespace), carrying `fds` if any; 0 or a negative errno. */
export function sendDatagram(path: string, message: string, fds: readonly number[] = []): number {
  const addr = unixAddress(path);
  if (addr === null) return -36; // ENAMETOOLONG
  let control: Buffer | null = null;
  if (fds.length > 0) {
    const dataLength = 4 * fds.length;
    control = Buffer.alloc(CMSG_HEADER + Math.ceil(dataLength / 8) * 8);
    control.writeBigUInt64LE(BigInt(CMSG_HEADER + dataLength), 0);
    control.writeInt32LE(SOL_SOCKET, 8);
    control.writeInt32LE(SCM_RIGHTS, 12);
    fds.forEach((fd, i) => control!.writeInt32LE(fd, CMSG_HEADER + 4 * i));
  }
  const fd = socketRaw(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno();
  try {
    const body = Buffer.from(message);
    const msg: MsgHdrTo = {
      name: addr, namelen: addr.length, iov: [{ base: body, len: body.length }], iovlen: 1, control, controllen: control?.length ?? 0, flags: 0,
    };
    return sendmsgRaw(fd, msg, 0) < 0 ? -errno() : 0;
  } finally {
    closeRaw(fd);
  }
}
