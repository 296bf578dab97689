/** Entry point of the daemon's worker process (forked by the supervisor with its arguments as JSON). */
import { runWorker } from './worker.js';
import type { WorkerArgs } from './worker-process.js';
import { log } from '../util/log.js';
import { errorText } from '../util/errors.js';

const args = JSON.parse(process.argv[2] ?? '{}') as WorkerArgs;
try {
  await runWorker(args);
} catch (err) {
  log.fatal({ err: errorText(err) }, 'worker failed to start');
  process.exit(1);
}
