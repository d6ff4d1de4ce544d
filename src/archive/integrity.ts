/**
 * The checks every read of entry data goes through, whatever the archive format: the recorded size and CRC-32
 * (a corrupt or hostile archive is caught as it streams, before it inflates further) and the cap on what is
 * read into memory.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { crc32 } from 'node:zlib';
import { MarError } from '../errors.js';
import type { ArchiveEntryInfo } from './sources/source.js';

/** What ArchiveReader.readEntry reads into memory at most, unless the caller says otherwise. */
export const DEFAULT_READ_ENTRY_MAX_BYTES = 64 << 20;

/** Collects a stream into one buffer, refusing to grow past maxBytes. */
export async function readAll(stream: AsyncIterable<Buffer> & { destroy(): unknown }, maxBytes: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream) {
    total += chunk.length;
    if (total > maxBytes) {
      stream.destroy();
      throw new MarError('ARCHIVE_LIMIT', `${what} is larger than ${maxBytes} bytes; it is too large to read into memory`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/**
 * Size and CRC-32 accounting for one entry's data against what the archive recorded (zip: CRC and size; tar/dir:
 * size), whoever reads the data: the stream below, or the extractor's parallel chunks. Errors are ARCHIVE_CORRUPT
 * naming the entry.
 */
export class EntryCheck {
  readonly #entry: ArchiveEntryInfo;
  readonly #archive: string;
  #bytes = 0;

  constructor(archive: string, entry: ArchiveEntryInfo) {
    this.#archive = archive;
    this.#entry = entry;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** Whether the archive recorded a CRC-32 to compare with. */
  get hasCrc(): boolean {
    return this.#entry.crc32 !== undefined;
  }

  /** Counts n more bytes; throws the moment the entry outgrows its recorded size: no trusting headers, no bombs. */
  count(n: number): void {
    this.#bytes += n;
    if (this.#bytes > this.#entry.size) throw this.#mismatch(`inflates to more than the recorded ${this.#entry.size} bytes`);
  }

  /** Compares the bytes counted and the CRC-32 of all of them with the archive's record. */
  finish(crc: number): void {
    if (this.#bytes !== this.#entry.size)
      throw this.#mismatch(`has ${this.#bytes} bytes of data but the archive records ${this.#entry.size}`);
    if (this.#entry.crc32 !== undefined && crc >>> 0 !== this.#entry.crc32 >>> 0) {
      throw this.#mismatch(`CRC-32 is ${hex8(crc)} but the archive records ${hex8(this.#entry.crc32)}`);
    }
  }

  #mismatch(what: string): MarError {
    return new MarError(
      'ARCHIVE_CORRUPT',
      `${this.#archive}: entry ${this.#entry.rawPath} ${what}; the archive is corrupt: rebuild or re-download it`,
      {
        details: { path: this.#entry.rawPath, kind: what.startsWith('CRC') ? 'crc' : 'size' },
      },
    );
  }
}

/** Passes data through while checking it with an EntryCheck (size as it streams, CRC-32 at the end). */
export class IntegrityCheck extends Transform {
  readonly #check: EntryCheck;
  readonly #onChunk: ((chunk: Buffer) => void) | undefined;
  #crc = 0;

  constructor(archive: string, entry: ArchiveEntryInfo, onChunk?: (chunk: Buffer) => void) {
    super();
    this.#check = new EntryCheck(archive, entry);
    this.#onChunk = onChunk;
  }

  get bytes(): number {
    return this.#check.bytes;
  }

  get crc(): number {
    return this.#crc;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.#check.count(chunk.length);
      if (this.#check.hasCrc) this.#crc = crc32(chunk, this.#crc);
      this.#onChunk?.(chunk);
    } catch (err) {
      cb(err as Error);
      return;
    }
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    try {
      this.#check.finish(this.#crc);
    } catch (err) {
      cb(err as Error);
      return;
    }
    cb();
  }
}

/** An entry whose data cannot be read (a broken deflate stream, a truncated file): ARCHIVE_CORRUPT naming it. */
export function entryDataError(archive: string, entry: ArchiveEntryInfo, err: unknown): MarError {
  if (err instanceof MarError) return err;
  const msg = (err as Error)?.message ?? String(err);
  return new MarError(
    'ARCHIVE_CORRUPT',
    `${archive}: entry ${entry.rawPath} cannot be read (${msg}); the archive is corrupt or truncated: rebuild or re-download it`,
    {
      cause: err,
      details: { path: entry.rawPath, kind: 'data' },
    },
  );
}

/** A CRC-32 as 8 hex digits, for messages. */
export function hex8(n: number): string {
  return (n >>> 0).toString(16).padStart(8, '0');
}
