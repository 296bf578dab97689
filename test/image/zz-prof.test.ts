import { it } from 'vitest';
import { contentFingerprint } from './compare.js';
it('p', () => {
  let t = Date.now();
  contentFingerprint(Buffer.from('/var/tmp/od-prof/f'), 5 * 1024 ** 3);
  console.log('5g fingerprint ms', Date.now() - t);
  t = Date.now();
  const fs = require('node:fs');
}, 300000);
