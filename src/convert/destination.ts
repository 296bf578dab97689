/**
 * Where `ondemand convert` writes the result: an OCI image layout (`oci:PATH[:TAG]`, index.json
 * entry tagged with `org.opencontainers.image.ref.name`) or a registry reference (blobs pushed,
 * then manifests; the top manifest or index under the reference's tag).
 */
import { createReadStream } from 'node:fs';
import { copyFile, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { FormatError, systemCode } from '../util/errors.js';
import { clientForReference } from '../registry/resolve.js';
import type { RegistryClient } from '../registry/client.js';
import { pushBlob } from '../registry/upload.js';
import { formatReference, parseReference, type ImageReference } from '../registry/reference.js';
import { MEDIA_TYPE_OCI_INDEX } from '../format/image/media-types.js';
import { isOciRef, parseOciRef, type SourceOptions } from './image-source.js';
import type { OciDescriptor } from './ondemand-manifest.js';

const REF_NAME = 'org.opencontainers.image.ref.name';

export interface Destination {
  readonly name: string;
  /** Stores a blob file (moved when possible: the work copy is not needed afterwards). */
  putBlobFile(digest: string, path: string, size: number): Promise<void>;
  putBlobBytes(digest: string, bytes: Buffer): Promise<void>;
  /** Stores a manifest that an index (or nothing) will refer to by digest. */
  putManifest(digest: string, bytes: Buffer, mediaType: string): Promise<void>;
  /** Names the top manifest or index (tag / index.json entry). */
  tagTop(top: OciDescriptor, bytes: Buffer): Promise<void>;
  close(): Promise<void>;
}

export function openDestination(text: string, options: SourceOptions = {}): Destination {
  return isOciRef(text) ? new OciLayoutDestination(text) : new RegistryDestination(parseReference(text), options);
}

class OciLayoutDestination implements Destination {
  readonly name: string;
  private readonly dir: string;
  private readonly tag: string | undefined;

  constructor(text: string) {
    const { path, tag } = parseOciRef(text);
    this.name = text;
    this.dir = path;
    this.tag = tag;
  }

  private blobPath(digest: string): string {
    const [alg, hex] = digest.split(':') as [string, string];
    return join(this.dir, 'blobs', alg, hex);
  }

  private async exists(path: string): Promise<boolean> {
    try {
      await stat(path);
      return true;
    } catch {
      return false;
    }
  }

  async putBlobFile(digest: string, path: string): Promise<void> {
    const to = this.blobPath(digest);
    await mkdir(dirname(to), { recursive: true });
    if (await this.exists(to)) return;
    try {
      await rename(path, to);
    } catch (err) {
      if (systemCode(err) !== 'EXDEV') throw err;
      const tmp = `${to}.tmp-${process.pid}`;
      await copyFile(path, tmp);
      await rename(tmp, to);
    }
  }

  async putBlobBytes(digest: string, bytes: Buffer): Promise<void> {
    const to = this.blobPath(digest);
    await mkdir(dirname(to), { recursive: true });
    if (await this.exists(to)) return;
    const tmp = `${to}.tmp-${process.pid}`;
    await writeFile(tmp, bytes);
    await rename(tmp, to);
  }

  putManifest(digest: string, bytes: Buffer): Promise<void> {
    return this.putBlobBytes(digest, bytes);
  }

  async tagTop(top: OciDescriptor, bytes: Buffer): Promise<void> {
    await this.putBlobBytes(top.digest, bytes);
    await writeFile(join(this.dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    const indexPath = join(this.dir, 'index.json');
    let manifests: OciDescriptor[] = [];
    try {
      const old = JSON.parse(await readFile(indexPath, 'utf8')) as { manifests?: OciDescriptor[] };
      manifests = Array.isArray(old.manifests) ? old.manifests : [];
    } catch (err) {
      if (systemCode(err) !== 'ENOENT') throw new FormatError(`${this.name}: existing index.json is unreadable: ${(err as Error).message}`);
    }
    // The new image takes the tag (or, untagged, replaces the untagged entries).
    manifests = manifests.filter((m) => m.annotations?.[REF_NAME] !== this.tag);
    const entry: OciDescriptor = { mediaType: top.mediaType, digest: top.digest, size: top.size };
    if (this.tag !== undefined) entry.annotations = { [REF_NAME]: this.tag };
    manifests.push(entry);
    const tmp = `${indexPath}.tmp-${process.pid}`;
    await writeFile(tmp, JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPE_OCI_INDEX, manifests }, null, 2));
    await rename(tmp, indexPath);
  }

  async close(): Promise<void> {}
}

class RegistryDestination implements Destination {
  readonly name: string;
  private readonly client: RegistryClient;

  constructor(private readonly ref: ImageReference, options: SourceOptions) {
    this.name = formatReference(ref);
    this.client = clientForReference(ref.registry, options);
  }

  async putBlobFile(digest: string, path: string, size: number): Promise<void> {
    await pushBlob(this.client, this.ref.repository, digest, {
      size,
      open: (start, end) => createReadStream(path, { start, end: end - 1, highWaterMark: 1 << 20 }),
    });
    await rm(path, { force: true });
  }

  async putBlobBytes(digest: string, bytes: Buffer): Promise<void> {
    await pushBlob(this.client, this.ref.repository, digest, bytes);
  }

  async putManifest(digest: string, bytes: Buffer, mediaType: string): Promise<void> {
    await this.client.putManifest(this.ref.repository, digest, bytes, mediaType);
  }

  async tagTop(top: OciDescriptor, bytes: Buffer): Promise<void> {
    const reference = this.ref.tag ?? this.ref.digest ?? 'latest';
    await this.client.putManifest(this.ref.repository, reference, bytes, top.mediaType);
  }

  close(): Promise<void> {
    return this.client.close();
  }
}
