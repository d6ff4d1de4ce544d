/**
 * Restart delays for a supervised worker. MMS retries after BACK_OFF[++idx] seconds from a Fibonacci table
 * ({0,1,1,2,3,5,8,...}), so the first retry waits 1 s. MMS resets the index after a successful load; the pool
 * resets it once the worker proved healthy (a reply, or a long enough uptime), so a crash loop after LOAD backs off.
 */

/** Delays in ms for consecutive restarts: 1, 1, 2, 3, 5, 8, 13, 21, 34, 55 s, then the cap. */
export const DEFAULT_BACKOFF_MS: readonly number[] = [1000, 1000, 2000, 3000, 5000, 8000, 13000, 21000, 34000, 55000];

/** Longest wait between two restarts, whatever the table says. */
export const MAX_BACKOFF_MS = 60_000;

export class Backoff {
  readonly #steps: readonly number[];
  readonly #capMs: number;
  #index = 0;

  /** `steps` are used in order; after the last one the last value repeats (never above `capMs`). */
  constructor(steps: readonly number[] = DEFAULT_BACKOFF_MS, capMs = MAX_BACKOFF_MS) {
    if (steps.length === 0) throw new RangeError('backoff needs at least one step');
    this.#steps = steps;
    this.#capMs = capMs;
  }

  /** The delay before the next attempt; each call moves one step further. */
  next(): number {
    const i = Math.min(this.#index, this.#steps.length - 1);
    this.#index++;
    return Math.min(this.#steps[i]!, this.#capMs);
  }

  /** How many delays were handed out since the last reset. */
  get attempts(): number {
    return this.#index;
  }

  /** Back to the first step (after a successful start). */
  reset(): void {
    this.#index = 0;
  }
}
