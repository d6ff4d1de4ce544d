/**
 * What every archive source (zip, tgz, directory) describes its entries with, and the interface ArchiveReader
 * reads them through. A source lists entries and hands out their raw data; integrity checks are the reader's.
 */
import type { Readable } from 'node:stream';

export type ArchiveKind = 'zip' | 'tgz' | 'dir';
export type EntryType = 'file' | 'directory' | 'symlink' | 'hardlink' | 'other';
/** `tar`: a tar member (the whole tar is gzipped, members have no compression of their own). `file`: a plain file in a dir. */
export type EntryMethod = 'stored' | 'deflated' | 'other' | 'tar' | 'file';

export interface ArchiveEntryInfo {
  /** Position in the archive (central-directory order for zips, stream order for tars, sorted for dirs). */
  index: number;
  /** The path a server sees: `/`-separated; for a tar, relative to its single root dir (if it has one). */
  path: string;
  /** The name as stored (decoded; a tar's includes its root dir). */
  rawPath: string;
  type: EntryType;
  isDirectory: boolean;
  isSymlink: boolean;
  /** Uncompressed size as recorded in the archive (zip: central directory). */
  size: number;
  /** Stored size of the data (zip); equals size for tars and dirs. */
  compressedSize: number;
  method: EntryMethod;
  /** The zip compression method number. */
  compressionMethod?: number;
  crc32?: number;
  /** Unix permission and type bits, when the archive records them. */
  mode?: number;
  mtime?: Date;
  linkTarget?: string;
  /** Zip only: the raw name bytes, general purpose flags and derived facts the Java readers care about. */
  rawName?: Buffer;
  flags?: number;
  hasDataDescriptor?: boolean;
  utf8Flag?: boolean;
  encrypted?: boolean;
  /** False when the raw name bytes are not valid UTF-8 (Java's ZipInputStream then fails the whole load). */
  nameValidUtf8: boolean;
}

/** The zip local file header fields that Java's ZipInputStream reads instead of the central directory. */
export interface LocalHeaderInfo {
  flags: number;
  compressionMethod: number;
  rawName: Buffer;
  crc32: number;
  compressedSize: number;
  size: number;
}

/** Where an entry's raw (stored or still deflated) bytes lie in the archive file: [start, end). */
export interface RawRange {
  start: number;
  end: number;
}

/** Gets every entry's data in archive order; `stream` is null for directories and links. */
export type EntryVisitor = (entry: ArchiveEntryInfo, stream: Readable | null) => Promise<void>;

/** One opened archive of one format, as ArchiveReader uses it. */
export interface ArchiveSource {
  /** Every entry in archive order (duplicates included); `index` is the position in this list. */
  readonly entries: ArchiveEntryInfo[];
  /** tgz only: the single root directory members live in, or null. */
  readonly tgzRoot: string | null;
  /** An entry's data when the listing already holds it in memory (small tar members). */
  cached(entry: ArchiveEntryInfo): Buffer | undefined;
  /** The raw, unchecked data of a file entry; errors on the stream are read errors of that entry. */
  openRaw(entry: ArchiveEntryInfo): Promise<Readable>;
  /**
   * Sources that can only be read front to back (tgz) stream every entry in one pass; the visitor must consume
   * `data` (or resume it). Absent when entries can be opened one by one.
   */
  scan?(visit: (entry: ArchiveEntryInfo, data: NodeJS.ReadableStream) => Promise<void>): Promise<void>;
  /** Zip only: where the entry's raw bytes are, after its local header was read and checked. */
  rawRange?(entry: ArchiveEntryInfo): Promise<RawRange>;
  /** Zip only: raw, unchecked bytes of the archive file at a position; resolves with the count read. */
  readAt?(buffer: Buffer, offset: number, length: number, position: number): Promise<number>;
  /** Zip only: the entry's local header. */
  readLocalHeader?(entry: ArchiveEntryInfo): Promise<LocalHeaderInfo>;
  close(): void;
}
