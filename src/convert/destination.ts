/**
 * Where `ondemand convert` writes the result: an OCI image layout (`oci:PATH[:TAG]`, index.json
 * entry tagged with `org.opencontainers.image.ref.name`) or a registry reference (blobs pushed,
 * then manifests; the top manifest or index under the reference's tag).
 */
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { copyFile, rename, rm } from 'node:fs/promises';
import { FormatError, errorText, systemCode } from '../util/errors.js';
import { logFor } from '../util/log.js';
import { clientForReference } from '../resolve/registry.js';
import type { RegistryClient } from '../registry/client.js';
import { pushBlob, pushGrowingBlob, type GrowingOutcome } from '../registry/upload.js';
import { formatReference, parseReference, type ImageReference } from '../registry/reference.js';
import { blobPath, parseOciRef } from '../format/image/oci-layout.js';
import { initLayout, putBlobBytes, putBlobFile, tagManifest } from '../build/write-layout.js';
import type { GrowingBlob } from '../build/growing-blob.js';
import { isOciRef, type SourceOptions } from './image-source.js';
import type { OciDescriptor } from './ondemand-manifest.js';

export interface Destination {
  readonly name: string;
  /** Stores a blob file (moved when possible: the work copy is not needed afterwards). */
  putBlobFile(digest: string, path: string, size: number): Promise<void>;
  /**
   * Stores a data blob while the build writes it (destinations where that saves time: registries).
   * Resolves once the blob is stored (or dropped by the build), its work file removed; rejects when
   * the build fails (the upload session cancelled) or the blob cannot be stored.
   */
  startBlobUpload?(blob: GrowingBlob, image: string): Promise<void>;
  putBlobBytes(digest: string, bytes: Buffer): Promise<void>;
  /** Stores a manifest that an index (or nothing) will refer to by digest. */
  putManifest(digest: string, bytes: Buffer, mediaType: string): Promise<void>;
  /** Names the top manifest or index (tag / index.json entry). */
  tagTop(top: OciDescriptor, bytes: Buffer): Promise<void>;
  close(): Promise<void>;
}

export interface DestinationOptions extends SourceOptions {
  /** PATCH chunk size of blob uploads to a registry (default the client's). */
  uploadChunkSize?: number;
}

export function openDestination(text: string, options: DestinationOptions = {}): Destination {
  return isOciRef(text) ? new OciLayoutDestination(text) : new RegistryDestination(parseReference(text), options);
}

class OciLayoutDestination implements Destination {
  readonly name: string;
  private readonly dir: string;
  private readonly tag: string;

  constructor(text: string) {
    const { path, tag } = parseOciRef(text);
    this.name = text;
    this.dir = path;
    // Untagged output is tagged `latest`, which readers pick when no tag is named.
    this.tag = tag ?? 'latest';
  }

  async putBlobFile(digest: string, path: string): Promise<void> {
    await initLayout(this.dir);
    const to = blobPath(this.dir, digest);
    try {
      await putBlobFile(this.dir, path, digest);
    } catch (err) {
      if (systemCode(err) !== 'EXDEV') throw err;
      // The work directory is on another filesystem: copy, then rename into place.
      const tmp = `${to}.tmp-${process.pid}`;
      await copyFile(path, tmp);
      await rename(tmp, to);
      await rm(path, { force: true });
    }
  }

  async putBlobBytes(digest: string, bytes: Buffer, mediaType = 'application/octet-stream'): Promise<void> {
    await initLayout(this.dir);
    const d = await putBlobBytes(this.dir, bytes, mediaType);
    if (d.digest !== digest) throw new FormatError(`${this.name}: blob stored as ${d.digest}, expected ${digest}`);
  }

  putManifest(digest: string, bytes: Buffer, mediaType: string): Promise<void> {
    return this.putBlobBytes(digest, bytes, mediaType);
  }

  async tagTop(top: OciDescriptor, bytes: Buffer): Promise<void> {
    await this.putBlobBytes(top.digest, bytes, top.mediaType);
    await tagManifest(this.dir, { mediaType: top.mediaType, digest: top.digest, size: top.size }, this.tag);
  }

  async close(): Promise<void> {}
}

class RegistryDestination implements Destination {
  readonly name: string;
  private readonly client: RegistryClient;

  constructor(private readonly ref: ImageReference, options: DestinationOptions) {
    this.name = formatReference(ref);
    this.client = clientForReference(ref.registry, options, options.uploadChunkSize !== undefined ? { uploadChunkSize: options.uploadChunkSize } : {});
  }

  async startBlobUpload(blob: GrowingBlob, image: string): Promise<void> {
    const open = (start: number, end: number): Readable => createReadStream(blob.path, { start, end: end - 1, highWaterMark: 1 << 20 });
    const label = `blob ${blob.index} of ${image}`;
    let outcome: GrowingOutcome;
    try {
      outcome = await pushGrowingBlob(this.client, this.ref.repository, { waitFor: (n) => blob.waitFor(n), done: blob.done, open }, label, { image: this.name });
    } catch (err) {
      // A failed build ends here (done rejects). A failed upload starts again, whole, from the
      // finished file: simpler than resuming a session in an unknown state, and the registry still
      // checks the digest.
      const final = await blob.done;
      if (final === null) return;
      logFor({ image: this.name, blob: final.digest }).warn({ err: errorText(err) }, 'upload during the build failed; pushing the finished blob again');
      outcome = 'small';
    }
    if (outcome === 'dropped') return;
    if (outcome === 'small') {
      const final = await blob.done;
      if (final === null) return;
      await pushBlob(this.client, this.ref.repository, final.digest, { size: final.size, open });
    }
    await rm(blob.path, { force: true });
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
