/**
 * Named points where tests make a mount fail on purpose ($ONDEMAND_FAIL_AT=<name>, inherited by the
 * daemon from the CLI that starts it), to prove that a failure half-way unwinds everything made so far.
 */
import { MountError } from '../util/errors.js';

export type FailPoint = 'before-erofs-mount' | 'before-usable';

export function failPoint(name: FailPoint): void {
  if (process.env.ONDEMAND_FAIL_AT === name) throw new MountError(`injected failure at ${name} ($ONDEMAND_FAIL_AT)`);
}
