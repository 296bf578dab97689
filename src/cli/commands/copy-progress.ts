/** Progress of `ondemand push`/`pull` on stderr: one rewritten line on a terminal, plain lines otherwise. */
import type { CopyEvent } from '../../copy/index.js';

function mib(n: number): string {
  return `${(n / (1 << 20)).toFixed(1)} MiB`;
}

export function copyProgress(verb: 'push' | 'pull'): { onEvent: (e: CopyEvent) => void; end: () => void } {
  const tty = process.stderr.isTTY === true;
  let blobs = 0;
  let bytes = 0;
  let shown = false;
  return {
    onEvent: (e) => {
      if (e.kind === 'blob') {
        blobs++;
        if (e.outcome === 'uploaded' || e.outcome === 'downloaded') bytes += e.size;
        if (tty) {
          process.stderr.write(`\r\x1b[K${verb}: ${blobs} blob(s), ${mib(bytes)} moved`);
          shown = true;
        } else {
          process.stderr.write(`${verb} blob ${e.digest.slice(0, 19)} ${mib(e.size)} ${e.outcome}\n`);
        }
      } else {
        if (tty && shown) process.stderr.write('\r\x1b[K');
        shown = false;
        process.stderr.write(`${verb} manifest ${e.digest.slice(0, 19)} ${e.mediaType}\n`);
      }
    },
    end: () => {
      if (tty && shown) process.stderr.write('\r\x1b[K');
    },
  };
}
