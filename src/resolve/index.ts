/**
 * REF → ResolvedImage. Forms: `oci:PATH[:TAG]`; a plain bootstrap file (+ `blobs`); anything else is a
 * registry reference, handled by ./registry.ts (`resolveRegistryImage`), loaded on demand.
 * Other modules may register extra forms with `registerResolver`.
 */
import { statSync } from 'node:fs';
import { NotFoundError, UsageError } from '../util/errors.js';
import { parseReference } from '../registry/reference.js';
import { resolveOciLayout } from './oci.js';
import { resolvePlainBootstrap } from './plain.js';
import type { ResolvedImage, ResolveOptions } from './types.js';

export type Resolver = (ref: string, options: ResolveOptions) => Promise<ResolvedImage>;

const registered: { matches: (ref: string) => boolean; resolve: Resolver }[] = [];

/** Adds a REF form; registered forms are tried before the built-in ones, latest first. */
export function registerResolver(matches: (ref: string) => boolean, resolve: Resolver): void {
  registered.unshift({ matches, resolve });
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** A registry reference: `HOST[:PORT]/REPO...` (a host has a dot or a port, or is localhost). */
export function looksLikeRegistryRef(ref: string): boolean {
  const slash = ref.indexOf('/');
  if (slash <= 0) return false;
  const host = ref.slice(0, slash);
  return host.includes('.') || host.includes(':') || host === 'localhost';
}

/** The registry a REF is resolved from (`host[:port]`), or undefined when it is a local form. */
export function registryOfRef(ref: string, blobs: readonly string[] = []): string | undefined {
  if (registered.some((r) => r.matches(ref)) || ref.startsWith('oci:') || blobs.length > 0 || isFile(ref) || !looksLikeRegistryRef(ref)) return undefined;
  return parseReference(ref).registry;
}

interface RegistryModule {
  resolveRegistryImage(ref: string, options: ResolveOptions): Promise<ResolvedImage>;
}

/** Loaded on first use: local images never pay for the registry client. */
async function loadRegistryModule(): Promise<RegistryModule> {
  return import('./registry.js');
}

/**
 * Loads the registry client ahead of its first use, where start-up time is not on anyone's clock (a
 * daemon's first mount of a registry image paid ~45 ms for loading it).
 */
export function preloadRegistrySupport(): void {
  loadRegistryModule().catch(() => undefined);
}

export async function resolveImage(ref: string, options: ResolveOptions = {}): Promise<ResolvedImage> {
  for (const r of registered) if (r.matches(ref)) return r.resolve(ref, options);
  if (ref.startsWith('oci:')) {
    if (options.blobs !== undefined && options.blobs.length > 0) throw new UsageError('--blob is only for plain bootstrap files');
    return resolveOciLayout(ref, options);
  }
  if ((options.blobs !== undefined && options.blobs.length > 0) || isFile(ref)) return resolvePlainBootstrap(ref, options.blobs ?? []);
  if (looksLikeRegistryRef(ref)) return (await loadRegistryModule()).resolveRegistryImage(ref, options);
  throw new NotFoundError(`${ref} is neither oci:PATH[:TAG], a bootstrap file, nor a registry reference`, { image: ref });
}

export { resolveOciLayout, resolvePlainBootstrap };
export type { ResolvedImage, ResolveOptions };
