/** `--prefetch-trace FILE` of mount, build and convert: a start-up trace as `ondemand trace export` prints it. */
import { readFileSync } from 'node:fs';
import { parseTrace, type StartupTrace } from '../format/image/trace.js';
import { NotFoundError, errorText } from '../util/errors.js';

export const TRACE_OPTION_HELP = 'FILE: a start-up trace (`ondemand trace export`)';

export function readTraceFile(file: string): StartupTrace {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new NotFoundError(`--prefetch-trace ${file}: cannot read it: ${errorText(err)}`, {}, { cause: err });
  }
  return parseTrace(text, `--prefetch-trace ${file}`);
}
