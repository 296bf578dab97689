/** The undo stack runs newest first, keeps going past a failing step, and reports the failures. */
import { describe, expect, it } from 'vitest';
import { UndoStack } from '../../src/util/undo-stack.js';
import { fromWire, toWire } from '../../src/daemon/wire-errors.js';
import { MountError, NotFoundError } from '../../src/util/errors.js';

describe('UndoStack', () => {
  it('unwinds in reverse order, past failures', async () => {
    const done: string[] = [];
    const undo = new UndoStack();
    undo.push('a', () => { done.push('a'); });
    undo.push('b', () => { throw new Error('b broke'); });
    undo.push('c', async () => { done.push('c'); });
    const failures = await undo.unwind();
    expect(done).toEqual(['c', 'a']);
    expect(failures).toEqual(['b: b broke']);
    expect(undo.size).toBe(0);
    expect(await undo.unwind()).toEqual([]);
  });
});

describe('errors over the control socket', () => {
  it('keep their class, code, message and context', () => {
    const e = fromWire(toWire(new NotFoundError('no image x', { image: 'x' })));
    expect(e).toBeInstanceOf(NotFoundError);
    expect(e.describe()).toBe('no image x');
    const m = fromWire(toWire(new MountError('busy', { mountpoint: '/m' })));
    expect(m).toBeInstanceOf(MountError);
    expect(m.describe()).toBe('busy (mountpoint=/m)');
  });
});
