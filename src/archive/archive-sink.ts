import type { SourceEntry } from './walk.js';

/** What every format writer needs to know about an entry besides its bytes. */
export interface EntryMeta {
  /** Path inside the archive (before any format-specific root such as tgz's `<model-name>/`). */
  archivePath: string;
  mtime: Date;
  /** 0o644 or 0o755. */
  mode: number;
}

export type EntryMethod = 'stored' | 'deflated';

export interface WrittenEntry {
  archivePath: string;
  size: number;
  sha256: string;
  /** For zip; tgz and no-archive report 'stored' (tgz compresses the stream as a whole). */
  method: EntryMethod;
  compressedSize: number;
}

/** Called with byte counts as source data is consumed (for progress). */
export type BytesCallback = (bytes: number) => void;

/**
 * One output format. pack.ts drives it in entry order: small files are `prepare`d ahead (read, hashed and,
 * for zip, compressed in the thread pool) and then added in order; large files are streamed in place.
 */
export interface ArchiveSink<P> {
  prepare(entry: SourceEntry): Promise<P>;
  addPrepared(meta: EntryMeta, prepared: P, onBytes: BytesCallback): Promise<WrittenEntry>;
  addStreamed(meta: EntryMeta, entry: SourceEntry, onBytes: BytesCallback): Promise<WrittenEntry>;
  addBuffer(meta: EntryMeta, data: Buffer): Promise<WrittenEntry>;
  /** Completes the output at its temp path; returns its size in bytes. */
  finish(): Promise<number>;
  /** Releases handles after a failure (the caller removes the temp path). */
  abort(): Promise<void>;
}
