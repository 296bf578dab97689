/**
 * Named points where a test makes a mount fail on purpose, to prove that a failure half-way unwinds
 * everything made so far. The product never arms them: only a test's preload module
 * (test/helpers/fail-points.mjs, loaded into the test's daemon with `node --import`) installs the
 * predicate, so no flag, file or variable of a production daemon can switch one on.
 */
import { MountError } from '../util/errors.js';

export type FailPoint = 'before-erofs-mount' | 'before-usable';

const ARMED = Symbol.for('ondemand.test.failPointArmed');

export function failPoint(name: FailPoint): void {
  const armed = (globalThis as { [ARMED]?: (name: FailPoint) => unknown })[ARMED];
  if (typeof armed === 'function' && armed(name) === true) throw new MountError(`injected failure at ${name}`);
}
