/** The transports ondemand implements: the one list orchestration picks from. */
import { fanotifyTransport } from './fanotify/transport.js';
import { fscacheTransport } from './fscache/transport.js';
import { fuseBlobsTransport } from './fuse-blobs/transport.js';
import { fuseTreeTransport } from './fuse-tree/transport.js';
import type { MountMode, Transport } from './types.js';

const transports: readonly Transport[] = [fscacheTransport, fanotifyTransport, fuseBlobsTransport, fuseTreeTransport];

export function transportFor(mode: MountMode): Transport | undefined {
  return transports.find((t) => t.mode === mode);
}

/** Tells every transport that re-attaching after a worker restart is over. */
export function reattachDone(): void {
  for (const t of transports) t.reattachDone?.();
}

/** Before the process exits, its mounts unmade: stops what transports run process-wide (event threads). */
export async function shutdownTransports(): Promise<void> {
  for (const t of transports) await t.shutdown?.();
}

export function implementedModes(): MountMode[] {
  return transports.map((t) => t.mode);
}
