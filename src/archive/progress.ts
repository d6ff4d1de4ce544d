/** Progress of a create run, reported through `onProgress`. */
export interface CreateProgress {
  bytesDone: number;
  bytesTotal: number;
  entriesDone: number;
  entriesTotal: number;
}

export type ProgressCallback = (p: CreateProgress) => void;

/** Inputs smaller than this finish too fast for a bar to help. */
export const PROGRESS_MIN_BYTES = 50 * 1024 * 1024;

import { formatBytes } from '../util/format.js';

export { formatBytes };

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  return `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
}

export interface ProgressBarOptions {
  stream: NodeJS.WriteStream;
  label: string;
  /** Redraw at most this often. */
  intervalMs?: number;
  /** Do not draw before this much time has passed (default 300 ms). */
  delayMs?: number;
  now?: () => number;
}

/**
 * A one-line bar for a TTY: `[=====>    ] 42% 540 MB/1.3 GB 310 MB/s ETA 3s`. Redraws in place (\r),
 * throttled, and clears itself when done so the summary line stands alone.
 */
export class ProgressBar {
  readonly #stream: NodeJS.WriteStream;
  readonly #label: string;
  readonly #intervalMs: number;
  readonly #delayMs: number;
  readonly #now: () => number;
  readonly #start: number;
  #lastDraw = 0;
  #drawn = false;

  constructor(options: ProgressBarOptions) {
    this.#stream = options.stream;
    this.#label = options.label;
    this.#intervalMs = options.intervalMs ?? 100;
    this.#delayMs = options.delayMs ?? 300;
    this.#now = options.now ?? (() => performance.now());
    this.#start = this.#now();
  }

  /** The text of the bar for a progress state (exposed for tests). */
  render(p: CreateProgress, width = 24): string {
    const elapsed = Math.max(1, this.#now() - this.#start);
    const frac = p.bytesTotal > 0 ? Math.min(1, p.bytesDone / p.bytesTotal) : 1;
    const filled = Math.round(frac * width);
    const bar = '='.repeat(Math.max(0, filled - 1)) + (filled > 0 ? (frac >= 1 ? '=' : '>') : '') + ' '.repeat(width - filled);
    const rate = (p.bytesDone / elapsed) * 1000;
    const etaMs = rate > 0 ? ((p.bytesTotal - p.bytesDone) / rate) * 1000 : 0;
    return (
      `${this.#label} [${bar}] ${String(Math.floor(frac * 100)).padStart(3)}% ` +
      `${formatBytes(p.bytesDone)}/${formatBytes(p.bytesTotal)} ${formatBytes(rate)}/s ETA ${formatDuration(etaMs)}`
    );
  }

  update(p: CreateProgress): void {
    const t = this.#now();
    // Nothing for the first moments: quick runs stay clean and the first rate/ETA is meaningful.
    if (t - this.#start < this.#delayMs) return;
    if (this.#drawn && t - this.#lastDraw < this.#intervalMs) return;
    this.#lastDraw = t;
    this.#drawn = true;
    const cols = this.#stream.columns || 80;
    this.#stream.write(`\r${this.render(p).slice(0, cols - 1)}\x1b[K`);
  }

  clear(): void {
    if (this.#drawn) this.#stream.write('\r\x1b[K');
    this.#drawn = false;
  }
}
