/** Compat scenarios, shard 2 of 2 (see suite.ts). */
import { compatSuite } from './suite.js';

compatSuite(1, 2);
