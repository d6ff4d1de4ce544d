/**
 * The numeric parameters of register (POST /models) and scale (PUT /models/{name}): each one's range, and the one
 * parser that holds a value to it. Out of range, not an integer or not a number at all is a 400 that names the
 * parameter and its range, where MMS silently falls back to the default for text and takes any integer
 * (docs/differences-from-mms.md). docs/server.md prints the same table.
 */
import { badRequest } from './responses.js';

export interface IntRange {
  readonly min: number;
  readonly max: number;
  /** Shown after the range in messages and docs. */
  readonly unit?: string;
}

/** More workers than this for one model is a typo, not a deployment (each one is a process with the model loaded). */
export const MAX_WORKERS_PER_MODEL = 256;

/** Every ranged parameter and its documented range. */
export const PARAM_RANGES = {
  batch_size: { min: 1, max: 1024 },
  max_batch_delay: { min: 0, max: 600_000, unit: 'ms' },
  initial_workers: { min: 0, max: MAX_WORKERS_PER_MODEL },
  // 0 (as MMS) means "not given": the server's default_response_timeout applies
  response_timeout: { min: 0, max: 86_400, unit: 's' },
  min_worker: { min: 0, max: MAX_WORKERS_PER_MODEL },
  max_worker: { min: 0, max: MAX_WORKERS_PER_MODEL },
  // TorchServe's register parameter: seconds a worker may take to start and load
  startup_timeout: { min: 0, max: 86_400, unit: 's' },
} as const satisfies Record<string, IntRange>;

export type RangedParam = keyof typeof PARAM_RANGES;

/** "an integer from 1 to 1024" / "an integer from 0 to 600000 (ms)". */
export function describeRange(name: RangedParam): string {
  const r: IntRange = PARAM_RANGES[name];
  return `an integer from ${r.min} to ${r.max}${r.unit ? ` (${r.unit})` : ''}`;
}

/**
 * A parameter's value from the query string (a string) or a JSON body (a number or a string), held to its range.
 * Undefined when not given (absent, null or empty); BAD_REQUEST naming the parameter and its range otherwise.
 */
export function rangedInt(name: RangedParam, raw: unknown): number | undefined {
  if (raw === undefined || raw === null) return undefined;
  let n: number;
  if (typeof raw === 'number') n = raw;
  else if (typeof raw === 'string') {
    const text = raw.trim();
    if (text === '') return undefined;
    n = /^[+-]?\d+$/.test(text) ? Number(text) : Number.NaN;
  } else n = Number.NaN;
  const r: IntRange = PARAM_RANGES[name];
  if (!Number.isInteger(n) || n < r.min || n > r.max) {
    const shown = typeof raw === 'string' ? JSON.stringify(raw) : (JSON.stringify(raw) ?? String(raw));
    throw badRequest(`Invalid value for ${name}: ${shown}; expected ${describeRange(name)}.`);
  }
  return n;
}
