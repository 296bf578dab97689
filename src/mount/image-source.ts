/** Where orchestration gets images from: the resolvers. One place to change when they change. */
import type { ResolvedImage, ResolveOptions } from '../resolve/types.js';
import { resolveRegistryImage } from '../registry/resolve.js';
import { UnsupportedError } from '../util/errors.js';

export async function resolveImageRef(ref: string, options: ResolveOptions): Promise<ResolvedImage> {
  if (ref.startsWith('oci:') || ref.startsWith('/') || ref.startsWith('.')) {
    throw new UnsupportedError(`cannot resolve ${ref}: the local image resolver (src/resolve/index.ts) is not built yet`, { image: ref });
  }
  return resolveRegistryImage(ref, options);
}
