import { createWriteStream, mkdirSync } from 'node:fs';
import type { WriteStream } from 'node:fs';
import { join } from 'node:path';
import { MarError, describeFsError } from '../errors.js';
import type { MetricLine } from '../runtime/metrics.js';

/**
 * model_metrics.log, as MMS's MODEL_METRICS logger writes it: one `<ISO time> - <metric>` line per [METRICS] line
 * of the workers (PredictionTime and the handlers' own metrics). Appends; buffered by the stream, so a prediction
 * never waits for the disk. A write error is reported once and further metrics are dropped: serving goes on.
 */
export class MetricsLog {
  readonly path: string;
  readonly #stream: WriteStream;
  #failed = false;

  private constructor(path: string, stream: WriteStream, log: (msg: string) => void) {
    this.path = path;
    this.#stream = stream;
    stream.on('error', (err) => {
      if (this.#failed) return;
      this.#failed = true;
      log(`cannot write ${path}: ${describeFsError(err)}; metrics are no longer logged`);
    });
  }

  /** Creates the directory if needed; throws a one-line MarError when it cannot (before the server listens). */
  static open(dir: string, log: (msg: string) => void): MetricsLog {
    try {
      mkdirSync(dir, { recursive: true });
    } catch (err) {
      throw new MarError('OUTPUT_FAILED', `cannot create metrics_location ${dir}: ${describeFsError(err)}`, { cause: err });
    }
    const path = join(dir, 'model_metrics.log');
    return new MetricsLog(path, createWriteStream(path, { flags: 'a' }), log);
  }

  write(metric: MetricLine): void {
    if (!this.#failed) this.#stream.write(`${new Date().toISOString()} - ${metric.raw}\n`);
  }

  /** Flushes what is buffered and closes the file. */
  close(): Promise<void> {
    return new Promise((resolve) => this.#stream.end(resolve));
  }
}
