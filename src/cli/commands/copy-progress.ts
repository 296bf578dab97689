/** Progress of `ondemand push`/`pull` on stderr, through the shared renderer: a rewritten line on a terminal, plain lines otherwise. */
import type { CopyEvent } from '../../copy/index.js';
import { createProgress, mib } from '../progress.js';

export function copyProgress(verb: 'push' | 'pull'): { onEvent: (e: CopyEvent) => void; end: () => void } {
  const progress = createProgress();
  const tty = process.stderr.isTTY === true;
  let blobs = 0;
  let bytes = 0;
  return {
    onEvent: (e) => {
      if (e.kind === 'blob') {
        blobs++;
        if (e.outcome === 'uploaded' || e.outcome === 'downloaded') bytes += e.size;
        // A line per blob off a terminal (a log keeps them all), one rewritten total on it.
        if (tty) progress.status(`${verb}: ${blobs} blob(s), ${mib(bytes)} moved`);
        else progress.note(`${verb} blob ${e.digest.slice(0, 19)} ${mib(e.size)} ${e.outcome}`);
      } else {
        progress.note(`${verb} manifest ${e.digest.slice(0, 19)} ${e.mediaType}`);
      }
    },
    end: () => progress.end(),
  };
}
