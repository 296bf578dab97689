/** FUSE_INIT: what this server asks for and settles, given what the kernel offers. */
import { EPROTO } from './errno.js';
import { FUSE_KERNEL_MINOR_VERSION, FUSE_KERNEL_VERSION, InitFlag, InitFlag2, type InitIn, type InitOut } from './layout.js';
import type { SessionSettings } from './session-options.js';
import type { FuseConnectionParams } from './types.js';

const WANTED = InitFlag.ASYNC_READ | InitFlag.PARALLEL_DIROPS | InitFlag.MAX_PAGES | InitFlag.INIT_EXT
  | InitFlag.ASYNC_DIO | InitFlag.CACHE_SYMLINKS | InitFlag.BIG_WRITES;

/** The reply to INIT; `params` when the connection is settled (not on a version mismatch). */
export interface InitAnswer {
  /** 0, or the negative errno to reply with. */
  error: number;
  reply: InitOut | undefined;
  params: FuseConnectionParams | undefined;
}

export function answerInit(k: InitIn, s: SessionSettings): InitAnswer {
  if (k.major > FUSE_KERNEL_VERSION) {
    // A newer major: answer with ours and the kernel retries.
    return {
      error: 0, params: undefined,
      reply: {
        major: FUSE_KERNEL_VERSION, minor: FUSE_KERNEL_MINOR_VERSION, maxReadahead: 0, flags: 0, maxBackground: 0,
        congestionThreshold: 0, maxWrite: 0, timeGran: 0, maxPages: 0, flags2: 0, maxStackDepth: 0,
      },
    };
  }
  if (k.major < FUSE_KERNEL_VERSION) return { error: -EPROTO, reply: undefined, params: undefined }; // one we cannot speak
  const flags = k.flags & (WANTED | (s.readdirPlus ? InitFlag.DO_READDIRPLUS : 0));
  const passthrough = s.passthrough && (flags & InitFlag.INIT_EXT) !== 0 && (k.flags2 & InitFlag2.PASSTHROUGH) !== 0;
  const minor = Math.min(k.minor, FUSE_KERNEL_MINOR_VERSION);
  const maxReadahead = Math.min(k.maxReadahead, s.maxReadahead);
  return {
    error: 0,
    params: { minor, passthrough, maxWrite: s.maxWrite, maxPages: s.maxPages, maxReadahead },
    reply: {
      major: FUSE_KERNEL_VERSION,
      minor,
      maxReadahead,
      flags,
      maxBackground: s.maxBackground,
      congestionThreshold: Math.floor((s.maxBackground * 3) / 4),
      maxWrite: s.maxWrite,
      timeGran: 1,
      maxPages: s.maxPages,
      flags2: passthrough ? InitFlag2.PASSTHROUGH : 0,
      // The backing files live on plain filesystems; erofs may stack on top of this one.
      maxStackDepth: passthrough ? 1 : 0,
    },
  };
}
