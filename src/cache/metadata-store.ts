/**
 * Image metadata kept with the blobs, so that an image mounted once mounts (and re-attaches) again
 * with its registry down:
 *   <dir>/manifests/<hex>      manifest or index bytes as the registry served them; hex = their sha256
 *   <dir>/tocs/<hex>           a blob's TOC bytes; hex = their sha256 (the manifest's tocDigest)
 *   <dir>/tags/<hex>.json      the last resolution of a tag reference; hex = sha256 of the reference:
 *                              {"reference":"host/repo:tag","digest":"sha256:…","resolvedAt":"<ISO time>"}
 * Content files are checked on write (their digest names them) and on read (a file whose bytes do not
 * hash to its name is removed and reported missing). All are private files (./private-file.ts).
 */
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { parseJsonObject, parseManifest } from '../format/image/manifest.js';
import { IntegrityError, errorText } from '../util/errors.js';
import { log } from '../util/log.js';
import { readWholeFile, writeWholeFile } from './private-file.js';
import { ensureCacheDir } from './safe-files.js';
import type { MetadataKind, MetadataStore, TagResolution } from './types.js';

/** Largest manifest or TOC read back (the registry client refuses manifests over 4 MiB). */
const MAX_BYTES: Record<MetadataKind, number> = { manifest: 4 << 20, toc: 64 << 20 };
const MAX_TAG_RECORD = 64 * 1024;

const sha256 = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

export interface MetadataLayout {
  manifests: string;
  tocs: string;
  tags: string;
  /** Start-up traces (mount/startup-trace.ts), one per manifest digest. */
  traces: string;
}

export function metadataLayout(dir: string): MetadataLayout {
  return { manifests: join(dir, 'manifests'), tocs: join(dir, 'tocs'), tags: join(dir, 'tags'), traces: join(dir, 'traces') };
}

/** Largest start-up trace read back. */
const MAX_TRACE = 16 << 20;

function hexOf(digest: string): string {
  const hex = digest.replace(/^sha256:/, '');
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new IntegrityError(`bad digest ${digest}`, { blob: digest });
  return hex;
}

/** A tag record's JSON, or undefined when it is not one for `reference`. */
function parseTagRecord(bytes: Buffer, reference?: string): TagResolution | undefined {
  try {
    const v = JSON.parse(bytes.toString('utf8')) as Partial<Record<keyof TagResolution, unknown>>;
    if (typeof v.reference !== 'string' || typeof v.digest !== 'string' || typeof v.resolvedAt !== 'string') return undefined;
    if (!/^sha256:[0-9a-f]{64}$/.test(v.digest) || Number.isNaN(Date.parse(v.resolvedAt))) return undefined;
    if (reference !== undefined && v.reference !== reference) return undefined;
    return { reference: v.reference, digest: v.digest, resolvedAt: v.resolvedAt };
  } catch {
    return undefined;
  }
}

export interface MetadataListing {
  /** Manifest digests with a start-up trace. */
  traces: string[];
  manifests: number;
  tocs: number;
  tags: TagResolution[];
  /** Bytes allocated by the three folders and their files. */
  bytes: number;
}

/** Names in `dir`, none when it cannot be read (listings never fail). */
export function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** Bytes allocated by `path`, 0 when it is gone. */
export function blocksOf(path: string): number {
  try {
    return lstatSync(path).blocks * 512;
  } catch {
    return 0;
  }
}

/** Read-only listing for `ondemand cache ls` (no lock, nothing repaired or verified). */
export function listMetadata(dir: string): MetadataListing {
  const l = metadataLayout(dir);
  let bytes = 0;
  const count = (folder: string): number => {
    bytes += blocksOf(folder); // the folders themselves too: usage() is compared with what du says
    const names = safeReaddir(folder);
    for (const n of names) bytes += blocksOf(join(folder, n));
    return names.length;
  };
  const manifests = count(l.manifests);
  const tocs = count(l.tocs);
  const traces = safeReaddir(l.traces).filter((n) => /^[0-9a-f]{64}\.json$/.test(n)).map((n) => `sha256:${n.slice(0, 64)}`);
  count(l.traces);
  const tags: TagResolution[] = [];
  bytes += blocksOf(l.tags);
  for (const n of safeReaddir(l.tags)) {
    const path = join(l.tags, n);
    bytes += blocksOf(path);
    const rec = parseTagRecord(readQuietly(path, MAX_TAG_RECORD));
    if (rec) tags.push(rec);
  }
  tags.sort((a, b) => a.reference.localeCompare(b.reference));
  return { manifests, tocs, tags, bytes, traces };
}

/** A stored start-up trace, read without the lock (`ondemand trace export`); undefined when there is none. */
export function readTraceFile(dir: string, digest: string): Buffer | undefined {
  const b = readWholeFile(join(metadataLayout(dir).traces, `${hexOf(digest)}.json`), 'start-up trace', MAX_TRACE);
  return b === 'refused' ? undefined : b;
}

/** For listings: a file's bytes, empty for anything missing, refused or unreadable. */
function readQuietly(path: string, maxBytes: number): Buffer {
  try {
    const b = readWholeFile(path, 'tag record', maxBytes);
    return b === undefined || b === 'refused' ? Buffer.alloc(0) : b;
  } catch {
    return Buffer.alloc(0);
  }
}

/** What gc dropped: manifests (and indexes), and the bootstraps only they used (uncompressed digests). */
export interface MetadataDrop {
  manifests: string[];
  bootstraps: string[];
}

export class ImageMetadataStore implements MetadataStore {
  private readonly layout: MetadataLayout;
  /** Files this process has written or verified (hex per kind): not re-hashed on every get. */
  private readonly known: Record<MetadataKind, Set<string>> = { manifest: new Set(), toc: new Set() };
  private bytes = 0;

  constructor(private readonly dir: string, private readonly tmp: string) {
    this.layout = metadataLayout(dir);
    for (const d of [this.layout.manifests, this.layout.tocs, this.layout.tags, this.layout.traces]) ensureCacheDir(d);
    this.bytes = listMetadata(dir).bytes;
  }

  /** Bytes the metadata files allocate. */
  diskBytes(): number {
    return this.bytes;
  }

  private folder(kind: MetadataKind): string {
    return kind === 'manifest' ? this.layout.manifests : this.layout.tocs;
  }

  async get(kind: MetadataKind, digest: string): Promise<Buffer | undefined> {
    const hex = hexOf(digest);
    const path = join(this.folder(kind), hex);
    const bytes = readWholeFile(path, kind, MAX_BYTES[kind]);
    if (bytes === undefined) return undefined;
    if (bytes !== 'refused' && (this.known[kind].has(hex) || sha256(bytes) === hex)) {
      this.known[kind].add(hex);
      return bytes;
    }
    // Never trusted: a damaged or planted file is removed and fetched again when the registry is there.
    log.warn({ path, kind, digest }, 'cached metadata failed verification; removed');
    this.known[kind].delete(hex);
    await this.remove(path);
    return undefined;
  }

  async put(kind: MetadataKind, digest: string, bytes: Buffer): Promise<void> {
    const hex = hexOf(digest);
    const actual = sha256(bytes);
    if (actual !== hex) throw new IntegrityError(`${kind} ${digest} to cache has digest sha256:${actual}`, { blob: digest });
    if (this.known[kind].has(hex)) return;
    await writeWholeFile(this.tmp, join(this.folder(kind), hex), bytes);
    this.known[kind].add(hex);
    this.recount();
  }

  private tagPath(reference: string): string {
    return join(this.layout.tags, `${sha256(reference)}.json`);
  }

  async tag(reference: string): Promise<TagResolution | undefined> {
    const path = this.tagPath(reference);
    const bytes = readWholeFile(path, 'tag record', MAX_TAG_RECORD);
    if (bytes === undefined) return undefined;
    const rec = bytes === 'refused' ? undefined : parseTagRecord(bytes, reference);
    if (!rec) {
      log.warn({ path, reference }, 'tag record unreadable; removed');
      await this.remove(path);
    }
    return rec;
  }

  async setTag(reference: string, digest: string, at = new Date()): Promise<void> {
    hexOf(digest);
    const rec: TagResolution = { reference, digest, resolvedAt: at.toISOString() };
    await writeWholeFile(this.tmp, this.tagPath(reference), Buffer.from(JSON.stringify(rec) + '\n'));
    this.recount();
  }

  async trace(digest: string): Promise<Buffer | undefined> {
    const bytes = readWholeFile(join(this.layout.traces, `${hexOf(digest)}.json`), 'start-up trace', MAX_TRACE);
    return bytes === 'refused' ? undefined : bytes;
  }

  async setTrace(digest: string, bytes: Buffer): Promise<void> {
    await writeWholeFile(this.tmp, join(this.layout.traces, `${hexOf(digest)}.json`), bytes);
    this.recount();
  }

  private async remove(path: string): Promise<void> {
    await rm(path, { force: true }).catch((err: unknown) => log.warn({ path, err: errorText(err) }, 'cannot remove cached metadata'));
    this.recount();
  }

  private recount(): void {
    this.bytes = listMetadata(this.dir).bytes;
  }

  /**
   * Drops the metadata of images whose blobs are no longer all in the cache (gc evicted one), except
   * images in use (every blob pinned by a mount, `inUse`). TOCs and bootstraps another kept image
   * names stay; indexes left without any kept entry and tag records naming dropped manifests go.
   */
  async dropImagesWithout(present: (blobId: string) => boolean, inUse: (blobId: string) => boolean): Promise<MetadataDrop> {
    const keptTocs = new Set<string>();
    const keptBootstraps = new Set<string>();
    const kept = new Set<string>();
    const dropped: { hex: string; tocs: string[]; bootstrap: string }[] = [];
    const indexes = new Map<string, string[]>();
    for (const hex of safeReaddir(this.layout.manifests)) {
      if (!/^[0-9a-f]{64}$/.test(hex)) continue;
      const bytes = await this.get('manifest', hex);
      if (!bytes) continue;
      const entries = indexEntries(bytes);
      if (entries) {
        indexes.set(hex, entries);
        continue;
      }
      let image;
      try {
        image = parseManifest(bytes, { ref: 'cache', manifestDigest: `sha256:${hex}` });
      } catch {
        kept.add(hex); // not an ondemand manifest: not ours to judge
        continue;
      }
      const tocs = image.blobs.map((b) => hexOf(b.tocDigest));
      const bootstrap = hexOf(image.bootstrap.uncompressedDigest);
      const ids = image.blobs.map((b) => b.blobId);
      if (ids.every(present) || ids.every(inUse)) {
        kept.add(hex);
        for (const t of tocs) keptTocs.add(t);
        keptBootstraps.add(bootstrap);
      } else {
        dropped.push({ hex, tocs, bootstrap });
      }
    }
    const gone = new Set<string>();
    const bootstraps = new Set<string>();
    for (const d of dropped) {
      await this.forget('manifest', d.hex);
      gone.add(d.hex);
      for (const t of d.tocs) if (!keptTocs.has(t)) await this.forget('toc', t);
      if (!keptBootstraps.has(d.bootstrap)) bootstraps.add(`sha256:${d.bootstrap}`);
    }
    for (const [hex, entries] of indexes) {
      if (entries.some((e) => kept.has(e))) continue;
      if (!entries.some((e) => gone.has(e))) continue; // an index we know nothing below of stays
      await this.forget('manifest', hex);
      gone.add(hex);
    }
    for (const name of safeReaddir(this.layout.tags)) {
      const path = join(this.layout.tags, name);
      const rec = parseTagRecord(readQuietly(path, MAX_TAG_RECORD));
      if (rec && gone.has(hexOf(rec.digest))) await this.remove(path);
    }
    this.recount();
    return { manifests: [...gone].map((h) => `sha256:${h}`), bootstraps: [...bootstraps] };
  }

  private async forget(kind: MetadataKind, hex: string): Promise<void> {
    this.known[kind].delete(hex);
    await this.remove(join(this.folder(kind), hex));
  }
}

/** The digests (hex) an index lists, or undefined when `bytes` is not an index. */
function indexEntries(bytes: Buffer): string[] | undefined {
  let v: Record<string, unknown>;
  try {
    v = parseJsonObject(bytes, (what) => {
      throw new Error(what);
    }, 'manifest');
  } catch {
    return undefined;
  }
  if (!Array.isArray(v.manifests)) return undefined;
  const out: string[] = [];
  for (const m of v.manifests as unknown[]) {
    const d = typeof m === 'object' && m !== null ? (m as { digest?: unknown }).digest : undefined;
    if (typeof d === 'string' && /^sha256:[0-9a-f]{64}$/.test(d)) out.push(d.slice(7));
  }
  return out;
}
