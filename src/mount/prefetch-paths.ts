/**
 * `mount --prefetch-paths FILE`: the list of paths or globs (one a line, in priority order) and their
 * resolution to blob byte ranges through the image's erofs bootstrap. Chunk-based files point into
 * blob devices 1..N (device i = blob i-1, offsets in its uncompressed view); data kept in the
 * bootstrap itself (inline files) is local already and needs no prefetch.
 */
import { Minimatch } from 'minimatch';
import { ErofsReader, fromFile, type WalkEntry } from '../format/erofs/index.js';

/** Bytes of one blob of the image (device-table index) to fetch. */
export interface BlobRange {
  blob: number;
  offset: number;
  length: number;
}

export interface ResolvedPrefetchPaths {
  /** In the list's order; within a glob or directory, in the image's walk order. */
  ranges: BlobRange[];
  /** How many files matched. */
  files: number;
  /** The list's entries that matched no file with data. */
  unmatched: string[];
}

/** Lines of a path list: `#` starts a comment line, blank lines are skipped, the rest is trimmed. */
export function parsePathList(text: string): string[] {
  const out: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    out.push(line);
  }
  return out;
}

/** Patterns are image paths from the root; `etc/passwd` and `/etc/passwd` are the same. */
function absolute(pattern: string): string {
  return pattern.startsWith('/') ? pattern : `/${pattern}`;
}

/**
 * Each entry names a file (its data), a directory (every file under it) or a glob (minimatch syntax,
 * dotfiles included) over the image's paths. Symlinks are not followed: a prefetch list names what
 * programs read, and the target has its own path. A file listed twice is fetched at its first place.
 */
export function resolvePathsInReader(reader: ErofsReader, patterns: readonly string[]): ResolvedPrefetchPaths {
  let walked: WalkEntry[] | undefined;
  const walk = (): WalkEntry[] => (walked ??= [...reader.walk()]);
  const seen = new Set<number>();
  const ranges: BlobRange[] = [];
  const unmatched: string[] = [];
  let files = 0;

  const addFile = (nid: number): boolean => {
    if (seen.has(nid)) return true;
    seen.add(nid);
    let any = false;
    for (const e of reader.fileExtents(nid)) {
      if (e.hole) continue;
      any = true;
      if (e.device === 0) continue;
      ranges.push({ blob: e.device - 1, offset: e.deviceOffset, length: e.length });
    }
    if (any) files++;
    return any || reader.inode(nid).size === 0;
  };
  const addUnder = (prefix: string): boolean => {
    let any = false;
    for (const w of walk()) if (w.kind === 'file' && (prefix === '/' || w.path.startsWith(prefix + '/'))) any = addFile(w.nid) || any;
    return any;
  };

  for (const pattern of patterns) {
    const path = absolute(pattern);
    const glob = new Minimatch(path, { dot: true });
    let matched = false;
    if (!glob.hasMagic()) {
      const nid = reader.resolve(path);
      const kind = nid === undefined ? undefined : reader.inode(nid).kind;
      if (nid !== undefined && kind === 'file') matched = addFile(nid);
      else if (kind === 'dir') matched = addUnder(path.replace(/\/+$/, '') || '/');
    } else {
      for (const w of walk()) {
        if (!glob.match(w.path)) continue;
        if (w.kind === 'file') matched = addFile(w.nid) || matched;
        else if (w.kind === 'dir') matched = addUnder(w.path) || matched;
      }
    }
    if (!matched) unmatched.push(pattern);
  }
  return { ranges, files, unmatched };
}

/** resolvePathsInReader over a bootstrap file. */
export function resolvePrefetchPaths(bootstrapPath: string, patterns: readonly string[], name?: string): ResolvedPrefetchPaths {
  const source = fromFile(bootstrapPath);
  try {
    return resolvePathsInReader(ErofsReader.open(source, name === undefined ? {} : { name }), patterns);
  } finally {
    source.close();
  }
}
