/** Messages between ThreadHash (thread-hash.ts) and its thread (hash-thread.ts). */
export type HashRequest =
  /** More bytes of stream `id` (the buffer is transferred). */
  | { kind: 'update'; id: number; bytes: ArrayBuffer }
  /** The digest of stream `id`, which then ends. */
  | { kind: 'digest'; id: number };

export interface HashReply {
  id: number;
  hex: string;
}
