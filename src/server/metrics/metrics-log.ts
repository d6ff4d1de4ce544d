/**
 * metrics_mode=log's files (ts_metrics.log, model_metrics.log). TorchServe writes one line per metric update, about
 * seven per request; formatted one at a time between the request's other work, each line cost far more than the
 * same line formatted in a loop (issue 12: the code and data were cold by the time the next request came). So a
 * request only records the line's template, value, request ids and time here; every 100 ms (or 4,096 lines) the
 * lines are formatted together, exactly as they would have been when recorded, and appended in one write. Lines
 * reach the file at most 100 ms after they happen, as LogFile's own gathering already allowed.
 */

import { LineStamp, LogFile } from '../log-file.js';
import { fillLogLine, type LogLineTemplate } from './ts-metrics.js';

/** How long a recorded line may wait to be formatted and written. */
const FORMAT_MS = 100;
/** Lines recorded before they are formatted whatever the time (bounds the memory held). */
const MAX_PENDING = 4096;

export class MetricsLog {
  readonly #file: LogFile;
  readonly #stamp = new LineStamp();
  /** The recorded lines, one slot per line in each array (no object per line, no array growing): [0, #count). */
  readonly #templates = new Array<LogLineTemplate | undefined>(MAX_PENDING).fill(undefined);
  readonly #values = new Float64Array(MAX_PENDING);
  readonly #requestIds = new Array<string | undefined>(MAX_PENDING).fill(undefined);
  readonly #times = new Float64Array(MAX_PENDING);
  #count = 0;
  #timer: NodeJS.Timeout | null = null;
  readonly #format = (): void => {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    const n = this.#count;
    if (n === 0) return;
    let text = '';
    for (let i = 0; i < n; i++) {
      const at = this.#times[i]!;
      text += `${this.#stamp.at(at)}${fillLogLine(this.#templates[i]!, this.#values[i]!, this.#requestIds[i], at)}\n`;
      this.#requestIds[i] = undefined;
    }
    this.#count = 0;
    this.#file.writeLines(text);
  };

  private constructor(file: LogFile) {
    this.#file = file;
  }

  /** Opens `fileName` under `dir` (LogFile.open: throws a one-line MarError naming `key` when it cannot). */
  static open(dir: string, fileName: string, key: string, log: (msg: string) => void): MetricsLog {
    return new MetricsLog(LogFile.open(dir, fileName, key, log));
  }

  /** One metric line, as fillLogLine makes it now: `requestIds` for a worker's metric (TorchServe writes them). */
  add(template: LogLineTemplate, value: number, requestIds?: string): void {
    const i = this.#count++;
    this.#templates[i] = template;
    this.#values[i] = value;
    if (requestIds !== undefined) this.#requestIds[i] = requestIds;
    this.#times[i] = Date.now();
    if (this.#count === MAX_PENDING) this.#format();
    else if (this.#timer === null) {
      this.#timer = setTimeout(this.#format, FORMAT_MS);
      this.#timer.unref();
    }
  }

  /** Writes what is recorded and closes the file. */
  close(): Promise<void> {
    this.#format();
    return this.#file.close();
  }
}
