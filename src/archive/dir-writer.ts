import { type FileHandle, mkdir, open, utimes } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { describeFsError, MarError } from '../errors.js';
import type { ArchiveSink, BytesCallback, EntryMeta, WrittenEntry } from './archive-sink.js';
import { ContentDigest, digestBuffer, type FileDigest, openSource, readChunks, readWholeFile, sourceSize } from './read-source.js';
import type { SourceEntry } from './walk.js';

export interface DirWriterOptions {
  signal?: AbortSignal;
}

export interface PreparedDirData {
  data: Buffer;
  digest: FileDigest;
}

/**
 * `no-archive`: copies every entry into a (temp) directory, hashing in the same read. Modes are 0644/0755 and
 * mtimes the entry time, so two runs with SOURCE_DATE_EPOCH give identical trees.
 */
export class DirWriter implements ArchiveSink<PreparedDirData> {
  readonly #root: string;
  readonly #signal: AbortSignal | undefined;
  readonly #made = new Set<string>();
  #bytes = 0;

  constructor(root: string, options: DirWriterOptions = {}) {
    this.#root = root;
    this.#signal = options.signal;
  }

  /** Creates the (temp) root; it must not exist yet. */
  static async create(root: string, options: DirWriterOptions = {}): Promise<DirWriter> {
    try {
      await mkdir(root, { mode: 0o755 });
    } catch (err) {
      throw new MarError('OUTPUT_FAILED', `cannot create ${root}: ${describeFsError(err)}`, { cause: err });
    }
    return new DirWriter(root, options);
  }

  #fail(path: string, err: unknown): MarError {
    if (err instanceof MarError) return err;
    return new MarError('OUTPUT_FAILED', `cannot write ${path}: ${describeFsError(err)}`, { cause: err });
  }

  async #openTarget(meta: EntryMeta): Promise<{ fh: FileHandle; path: string }> {
    const path = join(this.#root, ...meta.archivePath.split('/'));
    const parent = dirname(path);
    try {
      if (!this.#made.has(parent)) {
        await mkdir(parent, { recursive: true, mode: 0o755 });
        this.#made.add(parent);
      }
      return { fh: await open(path, 'wx', meta.mode), path };
    } catch (err) {
      throw this.#fail(path, err);
    }
  }

  async #finishFile(fh: FileHandle, path: string, meta: EntryMeta): Promise<void> {
    try {
      await fh.chmod(meta.mode); // the umask may have narrowed the open() mode
      await fh.close();
      await utimes(path, meta.mtime, meta.mtime);
    } catch (err) {
      throw this.#fail(path, err);
    }
  }

  async #writeKnown(meta: EntryMeta, data: Buffer, digest: FileDigest): Promise<WrittenEntry> {
    this.#signal?.throwIfAborted();
    const { fh, path } = await this.#openTarget(meta);
    try {
      await fh.writeFile(data);
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw this.#fail(path, err);
    }
    await this.#finishFile(fh, path, meta);
    this.#bytes += data.length;
    return { archivePath: meta.archivePath, size: digest.size, sha256: digest.sha256, method: 'stored', compressedSize: digest.size };
  }

  async prepare(entry: SourceEntry): Promise<PreparedDirData> {
    return readWholeFile(entry.sourcePath, entry.size, entry.sourcePath);
  }

  async addPrepared(meta: EntryMeta, p: PreparedDirData, onBytes: BytesCallback): Promise<WrittenEntry> {
    const w = await this.#writeKnown(meta, p.data, p.digest);
    onBytes(p.digest.size);
    return w;
  }

  async addBuffer(meta: EntryMeta, data: Buffer): Promise<WrittenEntry> {
    return this.#writeKnown(meta, data, digestBuffer(data));
  }

  async addStreamed(meta: EntryMeta, entry: SourceEntry, onBytes: BytesCallback): Promise<WrittenEntry> {
    this.#signal?.throwIfAborted();
    const shown = entry.sourcePath;
    const src = await openSource(entry.sourcePath, shown);
    try {
      const size = await sourceSize(src, shown);
      const { fh, path } = await this.#openTarget(meta);
      const digest = new ContentDigest();
      try {
        let position = 0;
        for await (const buf of readChunks(src, size, digest, shown, this.#signal)) {
          let done = 0;
          while (done < buf.length) {
            const { bytesWritten } = await fh.write(buf, done, buf.length - done, position + done);
            done += bytesWritten;
          }
          position += buf.length;
          onBytes(buf.length);
        }
      } catch (err) {
        await fh.close().catch(() => undefined);
        throw this.#fail(path, err);
      }
      await this.#finishFile(fh, path, meta);
      this.#bytes += digest.size;
      return { archivePath: meta.archivePath, size: digest.size, sha256: digest.sha256(), method: 'stored', compressedSize: digest.size };
    } finally {
      await src.close().catch(() => undefined);
    }
  }

  async finish(): Promise<number> {
    return this.#bytes;
  }

  async abort(): Promise<void> {
    // Nothing is held open between entries; the caller removes the temp dir.
  }
}
