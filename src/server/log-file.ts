import type { WriteStream } from 'node:fs';
import { createWriteStream, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describeFsError, MarError } from '../errors.js';

/** Bytes gathered before one write to the stream (a longer line is written at once). */
const FLUSH_BYTES = 64 * 1024;
/** How long a line may wait for the next write: each write is a system call on libuv's thread pool. */
const FLUSH_MS = 100;

/** The log4j time prefix of a line, `<ISO time> - `, for a time in ms; the last one is reused within its millisecond. */
export class LineStamp {
  #ms = -1;
  #text = '';

  at(ms: number): string {
    if (ms !== this.#ms) {
      this.#ms = ms;
      this.#text = `${new Date(ms).toISOString()} - `;
    }
    return this.#text;
  }
}

/**
 * An appended log file in MMS's log4j layout (`<ISO time> - <message>` per line): model_metrics.log under
 * metrics_location, access_log.log under log_location, TorchServe's ts_metrics.log. Lines are gathered for up to
 * 100 ms (or 64 KiB) and go to the stream in one write (metrics_mode=log writes several per request; a write per line
 * costs more than the line), so a request never waits for the disk; close() writes what is left. They are gathered
 * as UTF-8 in a buffer rather than as one long string: flattening a string of a thousand appended lines took ~3% of a
 * batch-1 request's CPU. A write error is reported once and later lines are dropped: serving goes on.
 */
export class LogFile {
  readonly path: string;
  readonly #stream: WriteStream;
  #failed = false;
  /** The lines not yet written: #buffer[0, #used). A buffer handed to the stream is not written to again. */
  #buffer = Buffer.allocUnsafe(FLUSH_BYTES);
  #used = 0;
  #flushTimer: NodeJS.Timeout | null = null;
  readonly #flush = (): void => {
    if (this.#flushTimer !== null) clearTimeout(this.#flushTimer);
    this.#flushTimer = null;
    if (this.#used === 0) return;
    if (!this.#failed) {
      this.#stream.write(this.#buffer.subarray(0, this.#used));
      this.#buffer = Buffer.allocUnsafe(FLUSH_BYTES);
    }
    this.#used = 0;
  };
  readonly #stamp = new LineStamp();

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
    if (this.#failed) return;
    const line = `${this.#stamp.at(Date.now())}${message}\n`;
    // at most 3 UTF-8 bytes per UTF-16 unit
    if (this.#used + 3 * line.length > FLUSH_BYTES) {
      this.#flush();
      if (3 * line.length > FLUSH_BYTES) {
        if (!this.#failed) this.#stream.write(line);
        return;
      }
    }
    this.#used += this.#buffer.write(line, this.#used);
    if (this.#flushTimer === null) {
      this.#flushTimer = setTimeout(this.#flush, FLUSH_MS);
      this.#flushTimer.unref();
    }
  }

  /**
   * Appends whole lines the caller encoded (each with its LineStamp prefix and newline), after what is buffered: for a
   * writer that formats many lines at once (metrics-log.ts). The chunk is the stream's from now on.
   */
  writeBytes(chunk: Uint8Array): void {
    if (this.#failed || chunk.length === 0) return;
    this.#flush();
    this.#stream.write(chunk);
  }

  /** Flushes what is buffered and closes the file. */
  close(): Promise<void> {
    this.#flush();
    return new Promise((resolve) => this.#stream.end(resolve));
  }
}
