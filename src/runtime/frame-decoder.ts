/**
 * Incremental decoders for the OTF codec: a socket read may hold part of a message or several messages.
 * Chunks are queued untouched; a parse is attempted only once enough bytes are buffered to possibly finish the
 * message (the parser reports the minimum it needs), so a large body split over many reads is parsed once.
 */

import { MarError } from '../errors.js';
import { DEFAULT_MAX_FRAME_BYTES, NeedMore, Reader, readReply, readRequest, type WorkerReply, type WorkerRequest } from './protocol.js';

export interface FrameDecoderOptions {
  /** Largest accepted value of any single length field (default 6553500, MMS max_response_size). */
  maxFrameBytes?: number;
}

/** Generic stream state: pending chunks plus the minimum byte count the next parse needs. */
export class FrameDecoder<T> {
  readonly #read: (r: Reader) => T;
  readonly #maxFrameBytes: number;
  #chunks: Buffer[] = [];
  #buffered = 0;
  #needed = 1;
  #failed: MarError | null = null;

  constructor(read: (r: Reader) => T, options: FrameDecoderOptions = {}) {
    this.#read = read;
    this.#maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
  }

  /** Bytes received but not yet part of a complete message. */
  get bufferedBytes(): number {
    return this.#buffered;
  }

  /**
   * Adds a chunk and returns every message it completes, in order. Throws MarError FRAME_TOO_LARGE or
   * FRAME_CORRUPT on a bad frame; after that the stream is unusable and every later push throws the same error.
   */
  push(chunk: Buffer): T[] {
    if (this.#failed) throw this.#failed;
    if (chunk.length === 0) return [];
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    const out: T[] = [];
    while (this.#buffered >= this.#needed) {
      const buf = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks, this.#buffered);
      const r = new Reader(buf, 0, this.#maxFrameBytes);
      let start = 0;
      try {
        for (;;) {
          out.push(this.#read(r));
          start = r.pos;
          if (start === buf.length) break;
        }
      } catch (err) {
        if (!(err instanceof NeedMore)) {
          this.#failed = err instanceof MarError ? err : new MarError('FRAME_CORRUPT', `corrupt frame: ${String(err)}`, { cause: err });
          this.#chunks = [];
          this.#buffered = 0;
          throw this.#failed;
        }
        this.#needed = err.minBytes - start;
      }
      if (start === buf.length) {
        // the usual read: whole messages, nothing left over
        this.#chunks.length = 0;
        this.#buffered = 0;
        this.#needed = 1;
        break;
      }
      const rest = buf.subarray(start);
      this.#chunks = [rest];
      this.#buffered = rest.length;
      // Loop only if the parse stopped for lack of bytes that are in fact there (cannot happen) - guard anyway.
      if (this.#buffered < this.#needed || rest.length === 0) break;
    }
    return out;
  }
}

/** Frontend side: decodes worker replies (LOAD and PREDICT responses). */
export class ReplyDecoder extends FrameDecoder<WorkerReply> {
  constructor(options: FrameDecoderOptions = {}) {
    super(readReply, options);
  }
}

/** Worker side: decodes LOAD and PREDICT messages. */
export class RequestDecoder extends FrameDecoder<WorkerRequest> {
  constructor(options: FrameDecoderOptions = {}) {
    super(readRequest, options);
  }
}
