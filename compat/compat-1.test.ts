/** Compat scenarios, shard 1 of 2 (see suite.ts). */
import { compatSuite } from './suite.js';

compatSuite(0, 2);
