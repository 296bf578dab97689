/**
 * Image references: `[HOST[:PORT]/]PATH[:TAG][@DIGEST]`, with Docker Hub's defaults
 * (no host → docker.io, a single-component path → `library/NAME`, no tag and no digest → `latest`).
 */
import { UsageError } from '../util/errors.js';

export interface ImageReference {
  /** The registry as the user names it: `docker.io`, `127.0.0.1:5000`, `ghcr.io`. */
  registry: string;
  /** Host[:port] the API is served from (`registry-1.docker.io` for docker.io). */
  endpoint: string;
  /** Repository path, e.g. `library/debian`. */
  repository: string;
  /** Tag, when given (or defaulted to `latest` when there is no digest). */
  tag?: string;
  /** `sha256:<hex>`, when given. */
  digest?: string;
}

export const DOCKER_HUB = 'docker.io';
export const DOCKER_HUB_ENDPOINT = 'registry-1.docker.io';

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DIGEST = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;
const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$/;

function bad(input: string, why: string): UsageError {
  return new UsageError(`invalid image reference "${input}": ${why}`);
}

/** The API endpoint of a registry name (docker.io's API lives elsewhere). */
export function registryEndpoint(registry: string): string {
  return registry === DOCKER_HUB || registry === 'index.docker.io' ? DOCKER_HUB_ENDPOINT : registry;
}

export function parseReference(input: string): ImageReference {
  const text = input.trim();
  if (text === '') throw bad(input, 'empty');
  if (/\s/.test(text)) throw bad(input, 'contains white space');
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) throw bad(input, 'give HOST/REPOSITORY, not a URL');

  let rest = text;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw bad(input, `digest "${digest}" is not sha256:<64 hex> or sha512:<128 hex>`);
  }

  let registry = DOCKER_HUB;
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (first.includes('.') || first.includes(':') || first === 'localhost' || /[A-Z]/.test(first)) {
      if (!HOST.test(first)) throw bad(input, `registry host "${first}" is not HOST[:PORT]`);
      const port = /:([0-9]+)$/.exec(first)?.[1];
      if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) throw bad(input, `port ${port} out of range`);
      registry = first === 'index.docker.io' ? DOCKER_HUB : first;
      rest = rest.slice(slash + 1);
    }
  }

  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw bad(input, `tag "${tag}" must be 1-128 of [A-Za-z0-9_.-], not starting with . or -`);
  }

  if (rest === '') throw bad(input, 'no repository name');
  for (const component of rest.split('/')) {
    if (!COMPONENT.test(component)) {
      throw bad(input, `repository component "${component}" must be lower-case letters, digits and single separators (. _ __ -)`);
    }
  }
  let repository = rest;
  if (registry === DOCKER_HUB && !repository.includes('/')) repository = `library/${repository}`;
  if (repository.length > 255) throw bad(input, 'repository name longer than 255 characters');

  if (tag === undefined && digest === undefined) tag = 'latest';
  const ref: ImageReference = { registry, endpoint: registryEndpoint(registry), repository };
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  return ref;
}

/** What to put after `/manifests/`: the digest when there is one, else the tag. */
export function manifestReference(ref: ImageReference): string {
  return ref.digest ?? ref.tag ?? 'latest';
}

export function formatReference(ref: ImageReference): string {
  let s = `${ref.registry}/${ref.repository}`;
  if (ref.tag !== undefined) s += `:${ref.tag}`;
  if (ref.digest !== undefined) s += `@${ref.digest}`;
  return s;
}
