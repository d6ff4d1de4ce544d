import type { WriteStream } from 'node:fs';
import { createWriteStream, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describeFsError, MarError } from '../errors.js';

/**
 * An appended log file in MMS's log4j layout (`<ISO time> - <message>` per line): model_metrics.log under
 * metrics_location, access_log.log under log_location. Buffered by the stream, so a request never waits for the
 * disk. A write error is reported once and later lines are dropped: serving goes on.
 */
export class LogFile {
  readonly path: string;
  readonly #stream: WriteStream;
  #failed = false;

  private constructor(path: string, stream: WriteStream, log: (msg: string) => void) {
    this.path = path;
    this.#stream = stream;
    stream.on('error', (err) => {
      if (this.#failed) return;
      this.#failed = true;
      log(`cannot write ${path}: ${describeFsError(err)}; no more lines are written to it`);
    });
  }

  /** Creates `dir` if needed; throws a one-line MarError naming `key` when it cannot (before the server listens). */
  static open(dir: string, fileName: string, key: string, log: (msg: string) => void): LogFile {
    try {
      mkdirSync(dir, { recursive: true });
    } catch (err) {
      throw new MarError('OUTPUT_FAILED', `cannot create ${key} ${dir}: ${describeFsError(err)}`, { cause: err });
    }
    const path = join(dir, fileName);
    return new LogFile(path, createWriteStream(path, { flags: 'a' }), log);
  }

  write(message: string): void {
    if (!this.#failed) this.#stream.write(`${new Date().toISOString()} - ${message}\n`);
  }

  /** Flushes what is buffered and closes the file. */
  close(): Promise<void> {
    return new Promise((resolve) => this.#stream.end(resolve));
  }
}
