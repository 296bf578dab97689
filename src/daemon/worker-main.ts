/** Entry point of the daemon's worker process (forked by the supervisor with its arguments as JSON). */
import { runWorker } from './worker.js';
import type { WorkerArgs } from './worker-process.js';
import { configureLog, log } from '../util/log.js';
import { configFromJson, setting } from '../config/resolve.js';
import { errorText } from '../util/errors.js';

const args = JSON.parse(process.argv[2] ?? '{}') as WorkerArgs;
try {
  // The daemon's configuration as the supervisor got it: a restarted worker serves exactly as the one before.
  const config = configFromJson(args.config, 'the worker\'s configuration');
  configureLog({ level: setting(config, 'log.level'), file: setting(config, 'log.file') });
  await runWorker(args, config);
} catch (err) {
  log.fatal({ err: errorText(err) }, 'worker failed to start');
  process.exit(1);
}
