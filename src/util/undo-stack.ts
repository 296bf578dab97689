/**
 * Undo steps for a half-made mount: each step that makes something pushes how to unmake it;
 * a failure (or umount) runs them newest first. A failing step is logged and the rest still run.
 */
import { log } from './log.js';
import { errorText } from './errors.js';

export interface UndoStep {
  what: string;
  run: () => Promise<void> | void;
}

export class UndoStack {
  private steps: UndoStep[] = [];

  push(what: string, run: () => Promise<void> | void): void {
    this.steps.push({ what, run });
  }

  get size(): number {
    return this.steps.length;
  }

  /** Runs every step newest first; returns the failures (already logged). */
  async unwind(): Promise<string[]> {
    const failures: string[] = [];
    while (this.steps.length > 0) {
      const step = this.steps.pop()!;
      try {
        await step.run();
      } catch (err) {
        failures.push(`${step.what}: ${errorText(err)}`);
        log.warn({ step: step.what, err: errorText(err) }, 'undo step failed');
      }
    }
    return failures;
  }
}
