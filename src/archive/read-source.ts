import { createHash, type Hash } from 'node:crypto';
import { type FileHandle, open } from 'node:fs/promises';
import { crc32 } from 'node:zlib';
import { describeFsError, MarError } from '../errors.js';

/** Read size for streamed files: large enough to keep syscalls cheap, small enough for a flat RSS. */
export const CHUNK_BYTES = 1 << 20;
/** Files up to this size are read whole (and can be prefetched and compressed ahead of the writer). */
export const SMALL_FILE_BYTES = 1 << 20;

/** sha256 + CRC-32 + byte count of one file, all computed from the single read that writes it. */
export class ContentDigest {
  readonly #hash: Hash = createHash('sha256');
  #crc = 0;
  #size = 0;

  update(buf: Buffer): void {
    this.#hash.update(buf);
    this.#crc = crc32(buf, this.#crc);
    this.#size += buf.length;
  }

  get crc32(): number {
    return this.#crc >>> 0;
  }

  get size(): number {
    return this.#size;
  }

  /** Hex sha256; call once, at the end. */
  sha256(): string {
    return this.#hash.digest('hex');
  }
}

export interface FileDigest {
  size: number;
  crc32: number;
  sha256: string;
}

/** The digest of an entry we generate in memory (manifest, digest list, small files read whole). */
export function digestBuffer(data: Buffer): FileDigest {
  const d = new ContentDigest();
  d.update(data);
  return { size: d.size, crc32: d.crc32, sha256: d.sha256() };
}

export async function openSource(path: string, shown: string): Promise<FileHandle> {
  try {
    return await open(path, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new MarError(code === 'ENOENT' ? 'INPUT_NOT_FOUND' : 'INPUT_INVALID', `cannot read ${shown}: ${describeFsError(err)}`, {
      cause: err,
    });
  }
}

/** Size of an opened input, or a one-line INPUT_INVALID error naming it. */
export async function sourceSize(fh: FileHandle, shown: string): Promise<number> {
  try {
    return (await fh.stat()).size;
  } catch (err) {
    throw new MarError('INPUT_INVALID', `cannot read ${shown}: ${describeFsError(err)}`, { cause: err });
  }
}

function changedError(shown: string, expected: number, actual: string): MarError {
  return new MarError(
    'INPUT_INVALID',
    `${shown} changed while it was being archived (expected ${expected} bytes, ${actual}); retry when it is no longer being written`,
  );
}

async function readInto(fh: FileHandle, buf: Buffer, position: number, length: number, shown: string): Promise<Buffer> {
  let filled = 0;
  try {
    while (filled < length) {
      const { bytesRead } = await fh.read(buf, filled, length - filled, position + filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
  } catch (err) {
    throw new MarError('INPUT_INVALID', `cannot read ${shown}: ${describeFsError(err)}`, { cause: err });
  }
  return filled === length ? buf.subarray(0, length) : buf.subarray(0, filled);
}

function readAt(fh: FileHandle, position: number, length: number, shown: string): Promise<Buffer> {
  return readInto(fh, Buffer.allocUnsafe(length), position, length, shown);
}

/** Buffers a streamed read rotates through (see readChunks' contract). */
const POOL_SIZE = 3;

/**
 * Reads an open file front to back, feeding `digest` before yielding each chunk. The next read is issued before
 * the current chunk is yielded, so reading overlaps the consumer's write or deflate.
 *
 * Chunks come from a pool of three reused buffers (fresh 1 MiB buffers per read cost a page fault per 4 KiB):
 * a yielded chunk stays valid until the consumer asks for the chunk after the next one. So a consumer may keep
 * one chunk in flight (e.g. queued in a zlib stream) while it handles the next, but no more.
 *
 * Fails if the file holds more or fewer bytes than `expectedSize` (it changed since it was measured).
 */
export async function* readChunks(
  fh: FileHandle,
  expectedSize: number,
  digest: ContentDigest,
  shown: string,
  signal?: AbortSignal,
): AsyncGenerator<Buffer> {
  const pool = Array.from({ length: POOL_SIZE }, () => Buffer.allocUnsafe(Math.min(CHUNK_BYTES, Math.max(expectedSize, 1))));
  let slot = 0;
  const readNext = (position: number): Promise<Buffer> => {
    const buf = pool[slot]!;
    slot = (slot + 1) % POOL_SIZE;
    // Always probe once past the expected end, so a file that grew is caught.
    return readInto(fh, buf, position, Math.min(buf.length, Math.max(expectedSize - position, 1)), shown);
  };
  let position = 0;
  let next: Promise<Buffer> | undefined = readNext(0);
  try {
    for (;;) {
      signal?.throwIfAborted();
      const buf: Buffer = await next;
      next = undefined;
      if (buf.length === 0) break;
      position += buf.length;
      if (position > expectedSize) throw changedError(shown, expectedSize, 'it grew');
      digest.update(buf);
      next = readNext(position);
      yield buf;
    }
    if (position < expectedSize) throw changedError(shown, expectedSize, `got ${position}`);
  } finally {
    // A pending read must not turn into an unhandled rejection when the consumer stops early.
    next?.catch(() => undefined);
  }
}

/**
 * Writes chunks from readChunks into a stream (zlib, gzip) keeping at most one chunk queued besides the one
 * being handed over, as readChunks' buffer reuse requires. Each write resolves when the stream has consumed it.
 */
export class ChunkFeeder {
  readonly #stream: NodeJS.WritableStream;
  #pending: Promise<void> | undefined;

  constructor(stream: NodeJS.WritableStream) {
    this.#stream = stream;
  }

  async write(buf: Buffer): Promise<void> {
    const current = new Promise<void>((resolve, reject) => {
      this.#stream.write(buf, (err?: Error | null) => (err ? reject(err) : resolve()));
    });
    current.catch(() => undefined);
    const previous = this.#pending;
    this.#pending = current;
    if (previous) await previous;
  }

  /** Waits until every chunk written so far has been consumed. */
  async flush(): Promise<void> {
    const p = this.#pending;
    this.#pending = undefined;
    if (p) await p;
  }
}

/**
 * Reads a small file whole (plus a one-byte probe for growth) and digests it. Used for prefetching:
 * memory stays bounded by SMALL_FILE_BYTES times the prefetch window.
 */
export async function readWholeFile(path: string, expectedSize: number, shown: string): Promise<{ data: Buffer; digest: FileDigest }> {
  const fh = await openSource(path, shown);
  try {
    const data = await readAt(fh, 0, expectedSize + 1, shown);
    if (data.length !== expectedSize)
      throw changedError(shown, expectedSize, data.length > expectedSize ? 'it grew' : `got ${data.length}`);
    const digest = new ContentDigest();
    digest.update(data);
    return { data, digest: { size: data.length, crc32: digest.crc32, sha256: digest.sha256() } };
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/** Reads `length` bytes at `position` (short at EOF); for sampling. */
export function readSample(fh: FileHandle, position: number, length: number, shown: string): Promise<Buffer> {
  return readAt(fh, position, length, shown);
}
