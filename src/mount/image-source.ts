/** Where orchestration gets images from: the resolver. One place to change when it changes. */
import type { ResolvedImage, ResolveOptions } from '../resolve/types.js';
import { preloadRegistrySupport, resolveImage } from '../resolve/index.js';

export function resolveImageRef(ref: string, options: ResolveOptions): Promise<ResolvedImage> {
  return resolveImage(ref, options);
}

/** Loads what resolving a registry image needs now, off the first mount's clock. */
export function preloadImageSources(): void {
  preloadRegistrySupport();
}
