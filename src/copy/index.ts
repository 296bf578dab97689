/**
 * Moving images between an OCI layout directory and a registry, unchanged (same bytes, same digests):
 * push copies the blobs a manifest (or index) names, then the manifest; pull does the reverse,
 * streaming each blob to a temp file, verified, then renamed into the layout.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { readFile, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { FormatError, IntegrityError, NotFoundError, UsageError, systemCode } from '../util/errors.js';
import { blobPath, parseOciRef, selectManifest } from '../format/image/oci-layout.js';
import { initLayout, putBlobBytes, putBlobFile, tagManifest } from '../build/write-layout.js';
import type { RegistryClient } from '../registry/client.js';
import { INDEX_MEDIA_TYPES, MANIFEST_MEDIA_TYPES, parseImageIndex, parseImageManifest, type Descriptor, type FetchedManifest } from '../registry/manifest.js';
import { hostPlatform, parsePlatform, selectPlatform } from '../registry/platform.js';
import { formatReference, manifestReference, parseReference } from '../registry/reference.js';
import { pushBlob, type BlobSource } from '../registry/upload.js';
import { readIndex } from '../fetch/read-layout.js';
import { clientForReference } from '../resolve/registry.js';
import type { ResolveOptions } from '../resolve/types.js';

export type CopyEvent =
  | { kind: 'blob'; digest: string; size: number; outcome: 'uploaded' | 'exists' | 'mounted' | 'downloaded' | 'present' }
  | { kind: 'manifest'; digest: string; mediaType: string; reference: string };

export interface CopyOptions extends Pick<ResolveOptions, 'insecure' | 'creds' | 'platform' | 'mirrors' | 'retries' | 'dockerConfig'> {
  /** Pull: copy an index with every platform instead of choosing one. */
  allPlatforms?: boolean;
  /** Push: repositories on the same registry to mount blobs from. */
  mountFrom?: string[];
  /** Blobs moved at once (default 4). */
  concurrency?: number;
  onEvent?: (e: CopyEvent) => void;
  /** For tests: a client to use instead of one made from the options. */
  client?: RegistryClient;
}

export interface CopyResult {
  /** The registry reference (push target or pull source). */
  ref: string;
  layout: string;
  tag: string;
  digest: string;
  mediaType: string;
  blobs: number;
  /** Bytes actually moved (uploaded or downloaded). */
  bytesMoved: number;
}

async function forEachLimit<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

function sha256(bytes: Buffer): string {
  return 'sha256:' + createHash('sha256').update(bytes).digest('hex');
}

/** Bytes of a layout blob, checked against its digest (manifests and indexes). */
async function readLayoutBlob(dir: string, d: Descriptor | { digest: string }, where: string): Promise<Buffer> {
  let bytes: Buffer;
  try {
    bytes = await readFile(blobPath(dir, d.digest));
  } catch (err) {
    if (systemCode(err) === 'ENOENT') throw new NotFoundError(`blob ${d.digest} missing from the layout`, { image: where, blob: d.digest });
    throw err;
  }
  if (sha256(bytes) !== d.digest) throw new IntegrityError(`layout blob ${d.digest} does not match its digest`, { image: where, blob: d.digest });
  return bytes;
}

function fileSource(path: string, size: number): BlobSource {
  return { size, open: (start, end) => createReadStream(path, { start, end: end - 1 }) };
}

/** `ondemand push`: the image `oci:LAYOUT[:TAG]` names, to registry reference `target`. */
export async function pushLayoutImage(layoutRef: string, target: string, options: CopyOptions = {}): Promise<CopyResult> {
  const { path, tag } = parseOciRef(layoutRef);
  const ref = parseReference(target);
  const name = formatReference(ref);
  const top = selectManifest(await readIndex(path), tag, layoutRef);
  if (ref.digest !== undefined && ref.digest !== top.digest) {
    throw new UsageError(`${target} names digest ${ref.digest} but the layout's image is ${top.digest}`);
  }
  const client = options.client ?? clientForReference(ref.registry, options);
  const emit = options.onEvent ?? (() => undefined);
  const pushed = new Set<string>();
  let blobs = 0;
  let bytesMoved = 0;

  const pushLayoutBlob = async (d: Descriptor): Promise<void> => {
    if (pushed.has(d.digest)) return;
    pushed.add(d.digest);
    const file = blobPath(path, d.digest);
    let size: number;
    try {
      size = (await stat(file)).size;
    } catch {
      throw new NotFoundError(`blob ${d.digest} missing from the layout`, { image: layoutRef, blob: d.digest });
    }
    if (size !== d.size) throw new FormatError(`layout blob ${d.digest} is ${size} bytes, its descriptor says ${d.size}`, { image: layoutRef, blob: d.digest });
    const source = size <= 1 << 20 ? await readFile(file) : fileSource(file, size);
    const outcome = await pushBlob(client, ref.repository, d.digest, source, options.mountFrom ? { mountFrom: options.mountFrom } : {});
    blobs++;
    if (outcome === 'uploaded') bytesMoved += size;
    emit({ kind: 'blob', digest: d.digest, size, outcome });
  };

  const pushManifest = async (d: Descriptor, reference: string): Promise<void> => {
    const bytes = await readLayoutBlob(path, d, layoutRef);
    if (INDEX_MEDIA_TYPES.has(d.mediaType)) {
      const index = parseImageIndex(bytes, d.mediaType, layoutRef);
      for (const child of index.manifests) await pushManifest(child, child.digest);
    } else if (MANIFEST_MEDIA_TYPES.has(d.mediaType)) {
      const m = parseImageManifest(bytes, d.mediaType, layoutRef);
      await forEachLimit([m.config, ...m.layers], options.concurrency ?? 4, pushLayoutBlob);
    } else {
      throw new FormatError(`layout entry ${d.digest} has unsupported media type ${d.mediaType}`, { image: layoutRef });
    }
    await client.putManifest(ref.repository, reference, bytes, d.mediaType);
    emit({ kind: 'manifest', digest: d.digest, mediaType: d.mediaType, reference });
  };

  try {
    const reference = ref.digest ?? ref.tag ?? 'latest';
    await pushManifest(top, reference);
    return { ref: name, layout: path, tag: reference, digest: top.digest, mediaType: top.mediaType, blobs, bytesMoved };
  } finally {
    if (options.client === undefined) await client.close();
  }
}

/** `ondemand pull`: registry reference `source` into `oci:LAYOUT[:TAG]`. */
export async function pullToLayout(source: string, layoutRef: string, options: CopyOptions = {}): Promise<CopyResult> {
  const ref = parseReference(source);
  const name = formatReference(ref);
  const { path, tag } = parseOciRef(layoutRef);
  const client = options.client ?? clientForReference(ref.registry, options);
  const emit = options.onEvent ?? (() => undefined);
  const fetched = new Set<string>();
  let blobs = 0;
  let bytesMoved = 0;

  const pullBlob = async (d: Descriptor): Promise<void> => {
    if (fetched.has(d.digest)) return;
    fetched.add(d.digest);
    blobs++;
    const dst = blobPath(path, d.digest);
    const have = await stat(dst).then(
      (s) => s.size,
      () => undefined,
    );
    if (have === d.size) {
      emit({ kind: 'blob', digest: d.digest, size: d.size, outcome: 'present' });
      return;
    }
    const tmp = join(dirname(dst), `.pull-${d.digest.slice(7, 23)}-${process.pid}`);
    try {
      await pipeline(client.openBlobStream(ref.repository, d.digest), createWriteStream(tmp));
      const size = (await stat(tmp)).size;
      if (size !== d.size) throw new IntegrityError(`blob ${d.digest} is ${size} bytes, its descriptor says ${d.size}`, { image: name, blob: d.digest });
      await putBlobFile(path, tmp, d.digest);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    bytesMoved += d.size;
    emit({ kind: 'blob', digest: d.digest, size: d.size, outcome: 'downloaded' });
  };

  const pullManifest = async (m: FetchedManifest): Promise<void> => {
    if (INDEX_MEDIA_TYPES.has(m.mediaType)) {
      const index = parseImageIndex(m.bytes, m.mediaType, name);
      for (const child of index.manifests) await pullManifest(await client.getManifest(ref.repository, child.digest));
    } else if (MANIFEST_MEDIA_TYPES.has(m.mediaType)) {
      const manifest = parseImageManifest(m.bytes, m.mediaType, name);
      await forEachLimit([manifest.config, ...manifest.layers], options.concurrency ?? 4, pullBlob);
    } else {
      throw new FormatError(`${name} has a manifest of unsupported media type "${m.mediaType}"`, { image: name });
    }
    await putBlobBytes(path, m.bytes, m.mediaType);
    emit({ kind: 'manifest', digest: m.digest, mediaType: m.mediaType, reference: m.digest });
  };

  try {
    let top = await client.getManifest(ref.repository, manifestReference(ref));
    if (INDEX_MEDIA_TYPES.has(top.mediaType) && options.allPlatforms !== true) {
      const index = parseImageIndex(top.bytes, top.mediaType, name);
      const wanted = options.platform !== undefined ? parsePlatform(options.platform) : hostPlatform();
      top = await client.getManifest(ref.repository, selectPlatform(index.manifests, wanted, name).digest);
    }
    await initLayout(path);
    await pullManifest(top);
    const finalTag = tag ?? ref.tag ?? 'latest';
    await tagManifest(path, { mediaType: top.mediaType, digest: top.digest, size: top.bytes.length }, finalTag);
    return { ref: name, layout: path, tag: finalTag, digest: top.digest, mediaType: top.mediaType, blobs, bytesMoved };
  } finally {
    if (options.client === undefined) await client.close();
  }
}
