/** FuseSession's options, their defaults, and what they mean for the reader thread. */
import { pipePagesAllowed } from '../native/pipe.js';
import { FUSE_MIN_READ_BUFFER, PAGE_SIZE, WRITE_REQUEST_OVERHEAD } from './layout.js';
import { DEFAULT_COPY_MIN_BYTES, DEFAULT_SPLICE_MIN_BYTES, type ReaderOptions } from './reader.js';
import type { FuseConnectionParams, ThreadTreeSpec } from './types.js';

/** Random 4 KiB READs on a quiet host: 39 us per read without spinning, 30 with (bench/RESULTS.md). */
const DEFAULT_SPIN_MICROS = 30;

/** Images are immutable: the kernel may cache names and attributes for a year. */
const DEFAULT_TIMEOUT = 365 * 24 * 3600;

export interface FuseSessionOptions {
  /** For logs. */
  name?: string;
  entryTimeout?: number;
  attrTimeout?: number;
  /** Negotiate FUSE passthrough when the kernel offers it (default true). */
  passthrough?: boolean;
  /** Ask for READDIRPLUS (default false; the filesystem must give readdir entries their attributes). */
  readdirPlus?: boolean;
  /**
   * Largest READ the kernel may send, in pages. Default 256 (1 MiB), or 255 when the reader splices
   * replies and a pipe may not hold 257 pages (no CAP_SYS_RESOURCE): a spliced 1020 KiB READ beat an
   * unspliced 1 MiB one (bench/RESULTS.md).
   */
  maxPages?: number;
  maxWrite?: number;
  maxReadahead?: number;
  /** Requests the kernel may have in flight in the background (readahead). */
  maxBackground?: number;
  /**
   * Let the reader thread answer READs itself when the filesystem gives a FastReadSource for the
   * inode (default true; false sends every READ to FuseFilesystem.read).
   */
  fastReads?: boolean;
  /**
   * After a request the reader thread keeps polling the device without sleeping for this long
   * (default 30): trades CPU for the wake-up latency of the next request.
   */
  readerSpinMicros?: number;
  /**
   * Helper threads that answer large fast READs next to the reader thread, so several are copied at
   * once (default 0: each is a V8 isolate, ~10 MB, and no gain was measurable on a loaded 2-core host).
   */
  readerCopyThreads?: number;
  /** With copy threads: fast READs from this size up go to a free one (default 128 KiB; Infinity = never by size). */
  readerCopyMinBytes?: number;
  /** READs answered with splice(2) from this size up (see ReaderOptions.spliceMinBytes; 0 = never). */
  readerSpliceMinBytes?: number;
  /**
   * Let the reader thread answer metadata requests itself when the filesystem offers a tree for it
   * (FuseFilesystem.threadTree; default true; false sends them all to the main thread).
   */
  threadMetadata?: boolean;
  /** The connection is already initialised with these parameters: do not wait for INIT. */
  params?: FuseConnectionParams;
  /**
   * With `params`: ask the kernel to resend requests the previous server read but never answered
   * (FUSE_NOTIFY_RESEND). Default true.
   */
  resend?: boolean;
  /**
   * Where the connection is mounted. With `params`, on a kernel that cannot resend (before 6.9) and
   * requests still waiting, the connection is aborted through it: the dead server's requests would
   * otherwise hang their readers forever, and an error is what they get instead.
   */
  mountPath?: string;
}

/** The options with every default filled in (those that have one). */
export type SessionSettings = Required<Omit<FuseSessionOptions, 'params' | 'name' | 'resend' | 'mountPath'>>;

/** 256 pages, unless replies are spliced and a pipe cannot hold 256 pages plus the header's. */
function defaultMaxPages(spliceMinBytes: number): number {
  return spliceMinBytes > 0 ? Math.max(32, Math.min(256, pipePagesAllowed() - 1)) : 256;
}

export function sessionSettings(options: FuseSessionOptions): SessionSettings {
  const readerSpliceMinBytes = options.readerSpliceMinBytes ?? DEFAULT_SPLICE_MIN_BYTES;
  return {
    entryTimeout: options.entryTimeout ?? DEFAULT_TIMEOUT,
    attrTimeout: options.attrTimeout ?? DEFAULT_TIMEOUT,
    passthrough: options.passthrough ?? true,
    readdirPlus: options.readdirPlus ?? false,
    maxPages: options.maxPages ?? defaultMaxPages(readerSpliceMinBytes),
    maxWrite: options.maxWrite ?? 128 * 1024,
    maxReadahead: options.maxReadahead ?? 1024 * 1024,
    maxBackground: options.maxBackground ?? 64,
    fastReads: options.fastReads ?? true,
    readerSpinMicros: options.readerSpinMicros ?? DEFAULT_SPIN_MICROS,
    readerCopyThreads: options.readerCopyThreads ?? 0,
    readerCopyMinBytes: options.readerCopyMinBytes ?? DEFAULT_COPY_MIN_BYTES,
    readerSpliceMinBytes,
    threadMetadata: options.threadMetadata ?? true,
  };
}

/**
 * The reader thread's buffers: room for the largest request (a WRITE, were they allowed) and for the
 * largest READ reply — of this session or of the one that negotiated an inherited connection.
 */
export function readerOptions(s: SessionSettings, inherited: FuseConnectionParams | undefined, tree: ThreadTreeSpec | undefined): ReaderOptions {
  return {
    ...(s.threadMetadata && tree !== undefined ? { tree: { spec: tree, timeouts: { entryTimeout: s.entryTimeout, attrTimeout: s.attrTimeout } } } : {}),
    bufferSize: Math.max(FUSE_MIN_READ_BUFFER, s.maxWrite + WRITE_REQUEST_OVERHEAD) + PAGE_SIZE,
    replySize: Math.max(s.maxPages, inherited?.maxPages ?? 0) * PAGE_SIZE,
    spinMicros: s.readerSpinMicros,
    copyThreads: s.readerCopyThreads,
    copyMinBytes: s.readerCopyMinBytes,
    spliceMinBytes: s.readerSpliceMinBytes,
  };
}
