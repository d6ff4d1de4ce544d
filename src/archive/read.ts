/**
 * ArchiveReader: one read-only view over the three shapes a model comes in: a zip (.mar), a gzip tar
 * (.tar.gz) and an unpacked directory. Each shape is a source (sources/zip.ts, tgz.ts, dir.ts) that lists
 * entries and hands out raw data; every byte read here goes through the integrity checks (integrity.ts), except
 * the raw zip ranges the extractor reads in parallel, which it checks itself with integrity.ts's EntryCheck.
 */
import { stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { MarError } from '../errors.js';
import { detectArchiveKind } from './archive-kind.js';
import { DEFAULT_READ_ENTRY_MAX_BYTES, entryDataError, IntegrityCheck, readAll } from './integrity.js';
import { type ArchiveLimits, checkEntryCount, type LimitHint, resolveArchiveLimits } from './limits.js';
import { openDirSource } from './sources/dir.js';
import type { ArchiveEntryInfo, ArchiveKind, ArchiveSource, EntryVisitor, LocalHeaderInfo, RawRange } from './sources/source.js';
import { openTgzSource } from './sources/tgz.js';
import { openZipSource } from './sources/zip.js';

export { detectArchiveKind } from './archive-kind.js';
export { DEFAULT_READ_ENTRY_MAX_BYTES, hex8, IntegrityCheck, readAll } from './integrity.js';
export type { ArchiveEntryInfo, ArchiveKind, EntryMethod, EntryType, EntryVisitor, LocalHeaderInfo, RawRange } from './sources/source.js';
export { findTgzRoot, scanTgz, torchServeTarPath } from './sources/tgz.js';
export { decodeZipName } from './sources/zip.js';

/** A read-only view of one archive (zip, tgz or directory); every byte of entry data read through it is checked. */
export class ArchiveReader {
  readonly path: string;
  readonly kind: ArchiveKind;
  /** Size of the archive file in bytes (the sum of file sizes for a directory). */
  readonly archiveBytes: number;
  /** tgz only: the single root directory members live in, or null. */
  readonly tgzRoot: string | null;
  /** The limits this reader applies (limits.ts), and how their errors say to raise them. */
  readonly limits: Readonly<ArchiveLimits>;
  readonly limitHint: LimitHint;
  readonly #source: ArchiveSource;
  readonly #entries: ArchiveEntryInfo[];
  #closed = false;

  private constructor(
    path: string,
    kind: ArchiveKind,
    archiveBytes: number,
    source: ArchiveSource,
    limits: ArchiveLimits,
    hint: LimitHint,
  ) {
    this.path = path;
    this.kind = kind;
    this.archiveBytes = archiveBytes;
    this.limits = limits;
    this.limitHint = hint;
    this.tgzRoot = source.tgzRoot;
    this.#source = source;
    this.#entries = source.entries;
  }

  /**
   * Opens an archive; for a zip this reads only the central directory, for a tgz it scans the whole stream once.
   * The entry count (all formats) and, for a tgz's scan, the inflated size and ratio are held to `limits`.
   */
  static async open(path: string, limits: Partial<ArchiveLimits> = {}, hint: LimitHint = 'flags'): Promise<ArchiveReader> {
    const resolved = resolveArchiveLimits(limits);
    const kind = await detectArchiveKind(path);
    if (kind === 'dir') {
      const source = await openDirSource(path);
      checkEntryCount(path, source.entries.length, resolved, hint);
      return new ArchiveReader(
        path,
        kind,
        source.entries.reduce((n, e) => n + e.size, 0),
        source,
        resolved,
        hint,
      );
    }
    const archiveBytes = (await stat(path)).size;
    const source = kind === 'zip' ? await openZipSource(path, resolved, hint) : await openTgzSource(path, resolved, hint);
    return new ArchiveReader(path, kind, archiveBytes, source, resolved, hint);
  }

  /** Every entry in archive order (duplicates included). */
  entries(): readonly ArchiveEntryInfo[] {
    return this.#entries;
  }

  /** The entry a server would use for a path: the last one with that name, as Java's readers keep the last. */
  find(path: string): ArchiveEntryInfo | undefined {
    for (let i = this.#entries.length - 1; i >= 0; i--) {
      const e = this.#entries[i]!;
      if (e.path === path && !e.isDirectory) return e;
    }
    return undefined;
  }

  has(path: string): boolean {
    return this.find(path) !== undefined;
  }

  /** Reads a small entry into memory (manifest, handler source, config). Data is integrity-checked. */
  async readEntry(pathOrEntry: string | ArchiveEntryInfo, maxBytes = DEFAULT_READ_ENTRY_MAX_BYTES): Promise<Buffer> {
    const entry = typeof pathOrEntry === 'string' ? this.find(pathOrEntry) : pathOrEntry;
    if (!entry) throw new MarError('INPUT_NOT_FOUND', `${this.path} has no entry ${String(pathOrEntry)}`);
    const hit = this.#source.cached(entry);
    if (hit) return hit;
    if (entry.size > maxBytes) {
      throw new MarError(
        'ARCHIVE_LIMIT',
        `${this.path}: entry ${entry.rawPath} is ${entry.size} bytes, more than the ${maxBytes} this command reads into memory`,
      );
    }
    const stream = await this.openEntryStream(entry);
    return readAll(stream, maxBytes, `${this.path}: entry ${entry.rawPath}`);
  }

  /**
   * A stream of one entry's uncompressed data, checked against the recorded size and CRC (errors end the
   * stream with ARCHIVE_CORRUPT). For a tgz this scans the archive up to the entry.
   */
  async openEntryStream(pathOrEntry: string | ArchiveEntryInfo, onChunk?: (chunk: Buffer) => void): Promise<Readable> {
    const entry = typeof pathOrEntry === 'string' ? this.find(pathOrEntry) : pathOrEntry;
    if (!entry) throw new MarError('INPUT_NOT_FOUND', `${this.path} has no entry ${String(pathOrEntry)}`);
    if (entry.type !== 'file') {
      throw new MarError('ARCHIVE_UNSUPPORTED', `${this.path}: entry ${entry.rawPath} is a ${entry.type}, not a file`);
    }
    const check = new IntegrityCheck(this.path, entry, onChunk);
    this.#assertOpen();
    const raw = await this.#source.openRaw(entry);
    raw.on('error', (err) => check.destroy(entryDataError(this.path, entry, err)));
    return raw.pipe(check);
  }

  /**
   * Streams every entry in archive order (one pass for a tgz). Each file's stream is integrity-checked;
   * the visitor must consume it. Directories and links get a null stream.
   */
  async walk(visitor: EntryVisitor, onChunk?: (entry: ArchiveEntryInfo, chunk: Buffer) => void): Promise<void> {
    this.#assertOpen();
    if (!this.#source.scan) {
      for (const entry of this.#entries) {
        if (entry.type !== 'file') {
          await visitor(entry, null);
          continue;
        }
        const stream = await this.openEntryStream(entry, onChunk ? (c) => onChunk(entry, c) : undefined);
        try {
          await visitor(entry, stream);
        } finally {
          if (!stream.readableEnded) stream.destroy();
        }
      }
      return;
    }
    await this.#source.scan(async (entry, data) => {
      if (entry.type !== 'file') {
        data.resume();
        await visitor(entry, null);
        return;
      }
      const check = new IntegrityCheck(this.path, entry, onChunk ? (c) => onChunk(entry, c) : undefined);
      data.on('error', (err: unknown) => check.destroy(err as Error));
      await visitor(entry, data.pipe(check));
      if (!check.readableEnded) {
        check.resume();
        await new Promise<void>((r, j) => {
          check.once('end', r);
          check.once('error', j);
        });
      }
    });
  }

  /** Whether entries can be read as raw byte ranges (zip), for rawRange and readRawAt. */
  get hasRawRanges(): boolean {
    return this.#source.rawRange !== undefined && this.#source.readAt !== undefined;
  }

  /**
   * Zip only: where a file entry's raw (stored or deflated) bytes are in the archive, after its local header was
   * checked. The bytes read from there are unchecked: the caller counts and CRCs them with an EntryCheck.
   */
  async rawRange(entry: ArchiveEntryInfo): Promise<RawRange> {
    this.#assertOpen();
    if (!this.#source.rawRange) throw new MarError('ARCHIVE_UNSUPPORTED', 'raw entry ranges exist only in zip archives');
    return this.#source.rawRange(entry);
  }

  /** Zip only: raw bytes of the archive file at a position (see rawRange); resolves with the count read. */
  async readRawAt(buffer: Buffer, offset: number, length: number, position: number): Promise<number> {
    this.#assertOpen();
    if (!this.#source.readAt) throw new MarError('ARCHIVE_UNSUPPORTED', 'raw reads exist only in zip archives');
    return this.#source.readAt(buffer, offset, length, position);
  }

  /** Zip only: the entry's local header, which is what Java's ZipInputStream actually reads. */
  async readLocalHeader(entry: ArchiveEntryInfo): Promise<LocalHeaderInfo> {
    this.#assertOpen();
    if (!this.#source.readLocalHeader) throw new MarError('ARCHIVE_UNSUPPORTED', 'local headers exist only in zip archives');
    return this.#source.readLocalHeader(entry);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#source.close();
  }

  #assertOpen(): void {
    if (this.#closed) throw new MarError('INTERNAL', `${this.path}: reader already closed`);
  }
}

/** Opens, runs fn, and always closes. */
export async function withArchive<T>(path: string, fn: (reader: ArchiveReader) => Promise<T>, limits?: Partial<ArchiveLimits>): Promise<T> {
  const reader = await ArchiveReader.open(path, limits);
  try {
    return await fn(reader);
  } finally {
    await reader.close();
  }
}
