/**
 * Writes one blob's presence map: always whole, with one pwrite at offset 0. Rewrites after new bits
 * are coalesced (one write in flight; the next picks up every bit set meanwhile) and not fsync'ed: a
 * crash leaves an older or torn map, which opening detects (docs/cache.md). Frames still unverified
 * are written as set (under MAP_FLAG_OPEN, which makes the next open verify them) so a crash during
 * re-verification does not lose them.
 */
import { errorText } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import { fdatasyncAsync, pwritev } from './file-io.js';
import { MAP_FLAG_OPEN } from './map-layout.js';
import { encodeMap, type DataRecord, type MapIdentity, type PresenceBits } from './presence-map.js';

export class MapWriter {
  private writing: Promise<void> | null = null;
  private dirty = false;
  private lastUsedPersisted: number;

  constructor(
    private readonly fd: number,
    private readonly identity: MapIdentity,
    private readonly bits: PresenceBits,
    private readonly unverified: PresenceBits,
    /** The blob's last use as kept in memory, persisted with every write. */
    private readonly lastUsed: () => number,
    private readonly log: Logger,
  ) {
    this.lastUsedPersisted = lastUsed();
  }

  /** Bits were set: rewrite the map soon. */
  schedule(): void {
    this.dirty = true;
    if (!this.writing) this.writing = this.writeWhileDirty();
  }

  private async writeWhileDirty(): Promise<void> {
    try {
      while (this.dirty) {
        this.dirty = false;
        await this.write(MAP_FLAG_OPEN);
      }
    } catch (err) {
      // The bits in memory stay right; the persisted map only lags (frames get re-fetched after a crash).
      this.log.warn({ err: errorText(err) }, 'cannot write presence map');
    } finally {
      this.writing = null;
    }
  }

  /**
   * Writes the map now: MAP_FLAG_OPEN while this process owns it; 0 on a clean close, with the data
   * file's record (`data`) that lets the next open trust the bits.
   */
  write(flags: number, data?: DataRecord): Promise<void> {
    this.lastUsedPersisted = this.lastUsed();
    const buf = encodeMap(this.identity, this.bits, this.lastUsedPersisted, flags, { data, unverified: this.unverified });
    return pwritev(this.fd, [buf], 0);
  }

  /** Writes the map and fsyncs it (before freeing data blocks, and on close). */
  async writeDurably(flags: number, data?: DataRecord): Promise<void> {
    await this.write(flags, data);
    await fdatasyncAsync(this.fd);
  }

  /** Waits until no scheduled write is pending. */
  async flush(): Promise<void> {
    while (this.writing) await this.writing;
  }

  /** Persists the last-use time if it moved (cheap: one small pwrite, no sync). */
  async persistLastUsed(): Promise<void> {
    if (this.lastUsed() === this.lastUsedPersisted) return;
    this.schedule();
    await this.flush();
  }
}
