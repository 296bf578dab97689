/** Messages between the tamper watch (tamper-watch.ts) and its thread (tamper-thread.ts). */

export interface TamperThreadData {
  /** The notification group (FAN_MODIFY marks on data files). */
  group: number;
  /** Readable when the thread must end. */
  wakeFd: number;
}

export type TamperThreadMessage =
  /** Files (handleKey of their file handle, or '*' for "could be any") another process modified, with its pid (0: unknown). */
  | { kind: 'changed'; changed: { file: string; pid: number }[] }
  | { kind: 'end'; message: string };
