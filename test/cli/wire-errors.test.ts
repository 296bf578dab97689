/** Errors across the control socket and the IPC channel keep their type, code, errno, context and cause. */
import { describe, expect, it } from 'vitest';
import type { WireError } from '../../src/daemon/protocol.js';
import { fromWire, toWire } from '../../src/daemon/wire-errors.js';
import { FormatError, MountError, NotFoundError, OndemandError, UsageError } from '../../src/util/errors.js';

/** Through JSON, as the socket carries it. */
function across(err: unknown): OndemandError {
  return fromWire(JSON.parse(JSON.stringify(toWire(err))) as WireError);
}

describe('wire errors', () => {
  it('a MountError with errno EBUSY and a system-error cause arrives whole', () => {
    const cause = Object.assign(new Error('umount2 /mnt/x: EBUSY'), { code: 'EBUSY' });
    const got = across(new MountError('/mnt/x is busy', { mountpoint: '/mnt/x' }, { errno: 16, cause }));
    expect(got).toBeInstanceOf(MountError);
    expect(got.code).toBe('EMOUNT');
    expect(got.errno).toBe(16);
    expect(got.context).toEqual({ mountpoint: '/mnt/x' });
    expect(got.message).toBe('/mnt/x is busy');
    expect(got.cause).toBeInstanceOf(Error);
    expect((got.cause as Error).message).toBe('umount2 /mnt/x: EBUSY');
    expect((got.cause as { code?: string }).code).toBe('EBUSY');
  });

  it('typed causes keep their type, chains keep their depth', () => {
    const inner = new FormatError('bad superblock', { blob: 'b1' });
    const got = across(new NotFoundError('cannot resolve image x', { image: 'x' }, { cause: inner }));
    expect(got).toBeInstanceOf(NotFoundError);
    expect(got.errno).toBe(2);
    expect(got.cause).toBeInstanceOf(FormatError);
    expect((got.cause as FormatError).errno).toBe(117);
    expect((got.cause as FormatError).context).toEqual({ blob: 'b1' });
  });

  it('usage errors stay usage errors; foreign errors keep their system code', () => {
    expect(across(new UsageError('bad flag'))).toBeInstanceOf(UsageError);
    const sys = across(Object.assign(new Error('ENOSPC: no space left'), { code: 'ENOSPC', errno: -28 }));
    expect(sys.code).toBe('ENOSPC');
    expect(sys.errno).toBe(28);
    expect(sys.message).toBe('ENOSPC: no space left');
  });
});
