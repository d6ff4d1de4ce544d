/**
 * metrics_mode=log's files (ts_metrics.log, model_metrics.log). TorchServe writes one line per metric update, about
 * seven per request; formatted one at a time between the request's other work, each line cost far more than the
 * same line formatted in a loop (issue 12: the code and data were cold by the time the next request came). So a
 * request only records the line's template, value, request ids and time here; every 100 ms (or 4,096 lines) the
 * lines are formatted together, exactly as they would have been when recorded, and appended in one write. Lines
 * reach the file at most 100 ms after they happen, as LogFile's own gathering already allowed.
 */

import { LineStamp, LogFile } from '../log-file.js';
import { type LogLineTemplate, metricValueText, REQUEST_IDS, secondsText } from './ts-metrics.js';

/** How long a recorded line may wait to be formatted and written. */
const FORMAT_MS = 100;
/** Lines recorded before they are formatted whatever the time (bounds the memory held). */
const MAX_PENDING = 4096;

export class MetricsLog {
  readonly #file: LogFile;
  readonly #encoder = new LogLineEncoder();
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
    const encoder = this.#encoder;
    for (let i = 0; i < n; i++) {
      encoder.line(this.#templates[i]!, this.#values[i]!, this.#requestIds[i], this.#times[i]!);
      this.#requestIds[i] = undefined;
    }
    this.#count = 0;
    this.#file.writeBytes(encoder.take());
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

/** Bytes kept for the next batch's lines after a batch is taken (a burst of long lines grows the buffer past it). */
const KEEP_BYTES = 1024 * 1024;
const EMPTY = new Uint8Array(0);
const REQUEST_IDS_BYTES = Buffer.from(REQUEST_IDS, 'latin1');
/** After a LineStamp's milliseconds: `Z - `. */
const STAMP_TAIL_LENGTH = 4;

/**
 * Log lines as UTF-8 bytes: each is `${LineStamp}${fillLogLine(...)}\n` (test/server/metrics-log.test.ts holds the two
 * equal). The template's parts, the time prefix (per millisecond) and the seconds are encoded once and copied; the
 * value and the request ids are short and nearly always ASCII, so they are copied a character at a time. Appending a
 * batch's lines to one string and encoding that cost twice as much per line: the string had to be flattened first.
 */
export class LogLineEncoder {
  /** The current millisecond's time prefix (`2026-12-05T15:24:19.123Z - `) and its second's line end. */
  #ms = Number.NaN;
  #second = Number.NaN;
  #stamp = EMPTY;
  #secondBytes = EMPTY;
  #out = Buffer.allocUnsafe(64 * 1024);
  #pos = 0;

  /** Appends one line: the metric of template `t` with `value` (and `requestIds`) recorded at `atMs`. */
  line(t: LogLineTemplate, value: number, requestIds: string | undefined, atMs: number): void {
    const ms = Math.floor(atMs);
    if (ms !== this.#ms) this.#setTime(ms);
    const valueText = metricValueText(value);
    const ids = requestIds === undefined ? '' : requestIds;
    const idsHead = requestIds === undefined ? 0 : REQUEST_IDS_BYTES.length;
    // at most 3 UTF-8 bytes per UTF-16 unit of the two texts copied by character
    this.#room(
      this.#stamp.length +
        t.headBytes.length +
        3 * (valueText.length + ids.length) +
        t.tailBytes.length +
        idsHead +
        this.#secondBytes.length,
    );
    this.#bytes(this.#stamp);
    this.#bytes(t.headBytes);
    this.#text(valueText);
    this.#bytes(t.tailBytes);
    if (idsHead > 0) {
      this.#bytes(REQUEST_IDS_BYTES);
      this.#text(ids);
    }
    this.#bytes(this.#secondBytes);
  }

  /** The prefix and line end of millisecond `ms`: a new second's are made, a millisecond's three digits rewritten. */
  #setTime(ms: number): void {
    this.#ms = ms;
    const second = Math.floor(ms / 1000);
    if (second !== this.#second) {
      this.#second = second;
      this.#stamp = Buffer.from(new LineStamp().at(ms), 'latin1');
      this.#secondBytes = Buffer.from(`${secondsText(second)}\n`, 'latin1');
      return;
    }
    // within the second only the milliseconds change: LineStamp's ISO time always ends in `.mmmZ - ` (the prefix is
    // copied into the output, so it can be rewritten)
    const digits = ms - second * 1000;
    const stamp = this.#stamp;
    const at = stamp.length - STAMP_TAIL_LENGTH - 3;
    stamp[at] = 48 + Math.floor(digits / 100);
    stamp[at + 1] = 48 + (Math.floor(digits / 10) % 10);
    stamp[at + 2] = 48 + (digits % 10);
  }

  /** The lines appended since the last take, as one buffer the caller keeps. */
  take(): Buffer {
    const done = this.#out.subarray(0, this.#pos);
    this.#out = Buffer.allocUnsafe(Math.min(this.#out.length, KEEP_BYTES));
    this.#pos = 0;
    return done;
  }

  #room(bytes: number): void {
    if (this.#pos + bytes <= this.#out.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(2 * this.#out.length, this.#pos + bytes));
    this.#out.copy(bigger, 0, 0, this.#pos);
    this.#out = bigger;
  }

  #bytes(b: Uint8Array): void {
    this.#out.set(b, this.#pos);
    this.#pos += b.length;
  }

  #text(s: string): void {
    const out = this.#out;
    let pos = this.#pos;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) {
        // the rest as UTF-8 (unpaired surrogates become U+FFFD, as Buffer.from(text) makes them)
        this.#pos = pos + out.write(s.slice(i), pos, 'utf8');
        return;
      }
      out[pos++] = c;
    }
    this.#pos = pos;
  }
}
