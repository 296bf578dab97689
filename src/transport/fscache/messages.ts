/**
 * The /dev/cachefiles on-demand message layout (include/uapi/linux/cachefiles.h), little-endian.
 * One read() returns exactly one message; `len` counts the 16-byte header.
 */

export const CACHEFILES_OP_OPEN = 0;
export const CACHEFILES_OP_CLOSE = 1;
export const CACHEFILES_OP_READ = 2;
/** Largest message the kernel sends; reads use a bigger buffer so EMSGSIZE never happens. */
export const CACHEFILES_MSG_MAX_SIZE = 1024;
/** _IOW(0x98, 1, int); the argument is the READ's msg_id by value. */
export const CACHEFILES_IOC_READ_COMPLETE = 0x40049801;

/** struct cachefiles_msg */
export const HDR_MSG_ID = 0; // u32
export const HDR_OPCODE = 4; // u32
export const HDR_LEN = 8; // u32
export const HDR_OBJECT_ID = 12; // u32
export const HDR_SIZE = 16;

/** struct cachefiles_open, after the header */
export const OPEN_VOLUME_KEY_SIZE = 16; // u32, includes the trailing NUL
export const OPEN_COOKIE_KEY_SIZE = 20; // u32, exact, no NUL
export const OPEN_FD = 24; // u32: anon fd already installed in the reading process
export const OPEN_FLAGS = 28; // u32, always 0 so far
export const OPEN_DATA = 32; // volume key (NUL-terminated) then cookie key

/** struct cachefiles_read, after the header */
export const READ_OFF = 16; // u64
export const READ_LEN = 24; // u64
export const READ_SIZE = 32;

export interface OpenMessage {
  opcode: typeof CACHEFILES_OP_OPEN;
  msgId: number;
  objectId: number;
  volumeKey: string;
  cookieKey: string;
  fd: number;
  flags: number;
}

export interface CloseMessage {
  opcode: typeof CACHEFILES_OP_CLOSE;
  msgId: number;
  objectId: number;
}

export interface ReadMessage {
  opcode: typeof CACHEFILES_OP_READ;
  msgId: number;
  objectId: number;
  offset: number;
  length: number;
}

export type CachefilesMessage = OpenMessage | CloseMessage | ReadMessage;

export class MessageParseError extends Error {}

/** Parses one message as returned by read(); `n` is read()'s return value. */
export function parseMessage(buf: Buffer, n: number): CachefilesMessage {
  if (n < HDR_SIZE) throw new MessageParseError(`short cachefiles message: ${n} bytes`);
  const msgId = buf.readUInt32LE(HDR_MSG_ID);
  const opcode = buf.readUInt32LE(HDR_OPCODE);
  const len = buf.readUInt32LE(HDR_LEN);
  const objectId = buf.readUInt32LE(HDR_OBJECT_ID);
  if (len !== n) throw new MessageParseError(`cachefiles message len ${len} but read returned ${n} (msg_id ${msgId})`);
  switch (opcode) {
    case CACHEFILES_OP_OPEN: {
      if (n < OPEN_DATA) throw new MessageParseError(`short OPEN message: ${n} bytes`);
      const vsize = buf.readUInt32LE(OPEN_VOLUME_KEY_SIZE);
      const csize = buf.readUInt32LE(OPEN_COOKIE_KEY_SIZE);
      if (OPEN_DATA + vsize + csize > n) throw new MessageParseError(`OPEN keys overrun the message (msg_id ${msgId})`);
      let vend = OPEN_DATA + vsize;
      if (vsize > 0 && buf[vend - 1] === 0) vend -= 1; // strip the NUL the size includes
      return {
        opcode,
        msgId,
        objectId,
        volumeKey: buf.toString('latin1', OPEN_DATA, vend),
        cookieKey: buf.toString('latin1', OPEN_DATA + vsize, OPEN_DATA + vsize + csize),
        fd: buf.readUInt32LE(OPEN_FD),
        flags: buf.readUInt32LE(OPEN_FLAGS),
      };
    }
    case CACHEFILES_OP_CLOSE:
      return { opcode, msgId, objectId };
    case CACHEFILES_OP_READ: {
      if (n < READ_SIZE) throw new MessageParseError(`short READ message: ${n} bytes`);
      return {
        opcode,
        msgId,
        objectId,
        offset: Number(buf.readBigUInt64LE(READ_OFF)),
        length: Number(buf.readBigUInt64LE(READ_LEN)),
      };
    }
    default:
      throw new MessageParseError(`unknown cachefiles opcode ${opcode} (msg_id ${msgId})`);
  }
}

/** Encodes a message the way the kernel does (for tests of the codec). */
export function encodeMessage(msg: CachefilesMessage): Buffer {
  let body: Buffer;
  if (msg.opcode === CACHEFILES_OP_OPEN) {
    const v = Buffer.from(`${msg.volumeKey}\0`, 'latin1');
    const c = Buffer.from(msg.cookieKey, 'latin1');
    body = Buffer.alloc(16 + v.length + c.length);
    body.writeUInt32LE(v.length, 0);
    body.writeUInt32LE(c.length, 4);
    body.writeUInt32LE(msg.fd, 8);
    body.writeUInt32LE(msg.flags, 12);
    v.copy(body, 16);
    c.copy(body, 16 + v.length);
  } else if (msg.opcode === CACHEFILES_OP_READ) {
    body = Buffer.alloc(16);
    body.writeBigUInt64LE(BigInt(msg.offset), 0);
    body.writeBigUInt64LE(BigInt(msg.length), 8);
  } else {
    body = Buffer.alloc(0);
  }
  const hdr = Buffer.alloc(HDR_SIZE);
  hdr.writeUInt32LE(msg.msgId, HDR_MSG_ID);
  hdr.writeUInt32LE(msg.opcode, HDR_OPCODE);
  hdr.writeUInt32LE(HDR_SIZE + body.length, HDR_LEN);
  hdr.writeUInt32LE(msg.objectId, HDR_OBJECT_ID);
  return Buffer.concat([hdr, body]);
}

/** The `copen` reply: size ≥ 0 accepts, a negative errno refuses. Plain decimal (the kernel parses base 0). */
export function copenCommand(msgId: number, sizeOrNegErrno: number): string {
  return `copen ${msgId},${sizeOrNegErrno}`;
}
