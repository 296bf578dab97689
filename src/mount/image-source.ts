/** Where orchestration gets images from: the resolver. One place to change when it changes. */
import type { ResolvedImage, ResolveOptions } from '../resolve/types.js';
import { resolveImage } from '../resolve/index.js';

export function resolveImageRef(ref: string, options: ResolveOptions): Promise<ResolvedImage> {
  return resolveImage(ref, options);
}
