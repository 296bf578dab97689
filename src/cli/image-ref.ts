/** The image reference every image-reading command takes (`<ref>` plus `--blob`), and opening it. */
import type { Argv } from 'yargs';
import { resolveImage } from '../resolve/index.js';
import type { ResolvedImage } from '../resolve/types.js';

/** Adds the `ref` positional and the repeatable `--blob` option. */
export function imageRefOptions<T>(y: Argv<T>) {
  return y
    .positional('ref', { type: 'string', demandOption: true, describe: 'oci:DIR[:TAG], a registry reference, or a bootstrap file' })
    .option('blob', { type: 'string', array: true, describe: 'Blob file of a plain bootstrap (repeat, device order)' });
}

/** Resolves the image named by `argv`, hands it to `use`, and always closes its fetcher. */
export async function withImageFromArgv<R>(argv: { ref: string; blob?: string[] | undefined }, use: (resolved: ResolvedImage) => Promise<R>): Promise<R> {
  const resolved = await resolveImage(argv.ref, { blobs: (argv.blob ?? []).map(String) });
  try {
    return await use(resolved);
  } finally {
    await resolved.fetcher.close();
  }
}
