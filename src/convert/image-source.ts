/**
 * Where `ondemand convert` reads an ordinary image from: a registry reference (through the registry
 * client) or an OCI image layout directory (`oci:PATH[:TAG]`). Both give manifests as fetched bytes
 * and blobs as whole buffers (small: config) or streams (layers).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { FormatError, IntegrityError, NotFoundError, systemCode } from '../util/errors.js';
import { blobPath, parseOciRef, selectManifest } from '../format/image/oci-layout.js';
import { readIndex } from '../fetch/read-layout.js';
import { clientForReference } from '../resolve/registry.js';
import type { ResolveOptions } from '../resolve/types.js';
import type { RegistryClient } from '../registry/client.js';
import { MAX_MANIFEST_BYTES, manifestMediaType, type FetchedManifest } from '../registry/manifest.js';
import { formatReference, manifestReference, parseReference, type ImageReference } from '../registry/reference.js';

export type SourceOptions = Pick<ResolveOptions, 'insecure' | 'creds' | 'mirrors' | 'retries' | 'dockerConfig'>;

export interface ImageSource {
  /** For messages: `oci:/path:tag` or `host/repo:tag`. */
  readonly name: string;
  /** The manifest or index the reference names. */
  top(): Promise<FetchedManifest>;
  /** A manifest by digest (index entries), verified. */
  manifest(digest: string): Promise<FetchedManifest>;
  /** A small blob (config), verified. */
  blob(digest: string, maxBytes: number): Promise<Buffer>;
  /** A layer as a stream. The caller checks the digest (the stream may check it too). */
  openBlob(digest: string): Readable;
  close(): Promise<void>;
}

const DIGEST = /^sha256:[a-f0-9]{64}$/;

export function isOciRef(text: string): boolean {
  return text.startsWith('oci:');
}

export function openImageSource(text: string, options: SourceOptions = {}): ImageSource {
  return isOciRef(text) ? new OciLayoutSource(text) : new RegistrySource(parseReference(text), options);
}

class RegistrySource implements ImageSource {
  readonly name: string;
  private readonly client: RegistryClient;

  constructor(private readonly ref: ImageReference, options: SourceOptions) {
    this.name = formatReference(ref);
    this.client = clientForReference(ref.registry, options);
  }

  top(): Promise<FetchedManifest> {
    return this.client.getManifest(this.ref.repository, manifestReference(this.ref));
  }

  manifest(digest: string): Promise<FetchedManifest> {
    return this.client.getManifest(this.ref.repository, digest);
  }

  blob(digest: string, maxBytes: number): Promise<Buffer> {
    return this.client.getBlob(this.ref.repository, digest, { maxBytes });
  }

  openBlob(digest: string): Readable {
    // A layer may take long on a slow link: the per-operation deadline is for stalls, not size.
    return this.client.openBlobStream(this.ref.repository, digest, { deadlineMs: 24 * 3600_000 });
  }

  close(): Promise<void> {
    return this.client.close();
  }
}

class OciLayoutSource implements ImageSource {
  readonly name: string;
  private readonly dir: string;
  private readonly tag: string | undefined;

  constructor(text: string) {
    const { path, tag } = parseOciRef(text);
    this.dir = path;
    this.tag = tag;
    this.name = text;
  }

  private blobPath(digest: string): string {
    if (!DIGEST.test(digest)) throw new FormatError(`${this.name}: invalid digest "${digest}"`, { image: this.name });
    return blobPath(this.dir, digest);
  }

  async top(): Promise<FetchedManifest> {
    const index = await readIndex(this.dir);
    const entry = selectManifest(index, this.tag, this.name);
    return this.manifest(entry.digest);
  }

  async manifest(digest: string): Promise<FetchedManifest> {
    const bytes = await this.blob(digest, MAX_MANIFEST_BYTES);
    return { mediaType: manifestMediaType(bytes, undefined, this.name), digest, bytes };
  }

  async blob(digest: string, maxBytes: number): Promise<Buffer> {
    const path = this.blobPath(digest);
    let size: number;
    try {
      size = (await stat(path)).size;
    } catch (err) {
      if (systemCode(err) === 'ENOENT') throw new NotFoundError(`${this.name}: blob ${digest} is missing`, { image: this.name, blob: digest });
      throw err;
    }
    if (size > maxBytes) throw new FormatError(`${this.name}: blob ${digest} is ${size} bytes (limit ${maxBytes})`, { image: this.name, blob: digest });
    const bytes = await readFile(path);
    const [alg] = digest.split(':') as [string];
    const actual = `${alg}:${createHash(alg).update(bytes).digest('hex')}`;
    if (actual !== digest) throw new IntegrityError(`${this.name}: blob ${digest} has digest ${actual}`, { image: this.name, blob: digest });
    return bytes;
  }

  openBlob(digest: string): Readable {
    return createReadStream(this.blobPath(digest), { highWaterMark: 1 << 20 });
  }

  async close(): Promise<void> {}
}
