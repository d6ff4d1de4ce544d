import { type FileHandle, open } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { promisify } from 'node:util';
import { deflateRaw, constants as zc } from 'node:zlib';
import { describeFsError, MarError } from '../errors.js';
import type { ArchiveSink, BytesCallback, EntryMeta, WrittenEntry } from './archive-sink.js';
import { DEFAULT_LEVEL, type MethodChoice, sampleFile } from './compression-policy.js';
import { KERNEL_COPY_BYTES } from './kernel-copy.js';
import { ContentDigest, digestBuffer, type FileDigest, openSource, readChunks, readWholeFile, sourceSize } from './read-source.js';
import type { SourceEntry } from './walk.js';
import {
  alignmentPadding,
  type CentralRecordInput,
  encodeCentralRecord,
  encodeEnd,
  encodeLocalHeader,
  MAX_32,
  METHOD_DEFLATED,
  METHOD_STORED,
  needsZip64,
  toDosDateTime,
  type ZipMethod,
} from './zip-format.js';

const deflateRawAsync = promisify(deflateRaw);

/** Deflate's window: the dictionary each parallel chunk is primed with. */
const DEFLATE_WINDOW = 32 * 1024;
/** Chunks deflated at once: one per core plus one, bounded by libuv's default pool of 4 threads. */
const PARALLEL_DEFLATES = Math.max(2, Math.min(4, availableParallelism() + 1));
/** A final, empty fixed-Huffman block: ends a deflate stream whose last piece ended with a sync flush. */
const EMPTY_FINAL_BLOCK = Buffer.from([0x03, 0x00]);

/** `auto` samples each entry (the `default` format); `store` never compresses (`zip-store`). */
export type ZipMethodPolicy = 'auto' | 'store';

export interface ZipWriterOptions {
  policy: ZipMethodPolicy;
  signal?: AbortSignal;
}

/** A small file read whole and already compressed (or not) in the thread pool. */
export interface PreparedZipData {
  data: Buffer;
  method: ZipMethod;
  digest: FileDigest;
}

/**
 * Streams a zip to a seekable file without data descriptors: each local header is written with placeholders,
 * the data follows, and CRC/sizes are patched in with a positional write. Zip64 extras are used when an entry's
 * size (known from stat) may reach 4 GiB, and a zip64 end record when entries or offsets overflow.
 */
export class ZipWriter implements ArchiveSink<PreparedZipData> {
  readonly #fh: FileHandle;
  readonly #path: string;
  readonly #policy: ZipMethodPolicy;
  readonly #signal: AbortSignal | undefined;
  #offset = 0;
  readonly #central: Buffer[] = [];
  #centralSize = 0;
  #closed = false;

  private constructor(fh: FileHandle, path: string, options: ZipWriterOptions) {
    this.#fh = fh;
    this.#path = path;
    this.#policy = options.policy;
    this.#signal = options.signal;
  }

  /** Creates the file exclusively (it must not exist: it is our temp file). */
  static async create(path: string, options: ZipWriterOptions): Promise<ZipWriter> {
    try {
      return new ZipWriter(await open(path, 'wx', 0o644), path, options);
    } catch (err) {
      throw new MarError('OUTPUT_FAILED', `cannot create ${path}: ${describeFsError(err)}`, { cause: err });
    }
  }

  get entryCount(): number {
    return this.#central.length;
  }

  async #writeAt(buf: Buffer, position: number): Promise<void> {
    try {
      let done = 0;
      while (done < buf.length) {
        const { bytesWritten } = await this.#fh.write(buf, done, buf.length - done, position + done);
        done += bytesWritten;
      }
    } catch (err) {
      throw new MarError('OUTPUT_FAILED', `cannot write ${this.#path}: ${describeFsError(err)}`, { cause: err });
    }
  }

  async #append(buf: Buffer): Promise<void> {
    const at = this.#offset;
    this.#offset += buf.length;
    await this.#writeAt(buf, at);
  }

  #record(meta: EntryMeta, method: ZipMethod, digest: FileDigest, compressedSize: number, zip64: boolean, offset: number): WrittenEntry {
    const rec: CentralRecordInput = {
      name: meta.archivePath,
      method,
      dos: toDosDateTime(meta.mtime),
      crc32: digest.crc32,
      size: digest.size,
      compressedSize,
      zip64,
      localHeaderOffset: offset,
      mode: meta.mode,
    };
    const buf = encodeCentralRecord(rec);
    this.#central.push(buf);
    this.#centralSize += buf.length;
    return {
      archivePath: meta.archivePath,
      size: digest.size,
      sha256: digest.sha256,
      method: method === METHOD_DEFLATED ? 'deflated' : 'stored',
      compressedSize,
    };
  }

  /** Writes a whole entry whose bytes, CRC and sizes are all known: header and data in one go. */
  async #writeKnown(meta: EntryMeta, method: ZipMethod, data: Buffer, digest: FileDigest): Promise<WrittenEntry> {
    this.#signal?.throwIfAborted();
    const zip64 = needsZip64(digest.size, method) || data.length >= MAX_32;
    const offset = this.#offset;
    const header = encodeLocalHeader({
      name: meta.archivePath,
      method,
      dos: toDosDateTime(meta.mtime),
      crc32: digest.crc32,
      size: digest.size,
      compressedSize: data.length,
      zip64,
    });
    await this.#append(Buffer.concat([header, data]));
    return this.#record(meta, method, digest, data.length, zip64, offset);
  }

  /** Compresses in the thread pool; stores instead when deflate does not make the entry smaller (as `zip` does). */
  async #encodeSmall(data: Buffer): Promise<{ data: Buffer; method: ZipMethod }> {
    if (this.#policy === 'store' || data.length === 0) return { data, method: METHOD_STORED };
    const deflated = await deflateRawAsync(data, { level: DEFAULT_LEVEL });
    return deflated.length < data.length ? { data: deflated, method: METHOD_DEFLATED } : { data, method: METHOD_STORED };
  }

  async prepare(entry: SourceEntry): Promise<PreparedZipData> {
    const { data, digest } = await readWholeFile(entry.sourcePath, entry.size, entry.sourcePath);
    const encoded = await this.#encodeSmall(data);
    return { ...encoded, digest };
  }

  async addPrepared(meta: EntryMeta, prepared: PreparedZipData, onBytes: BytesCallback): Promise<WrittenEntry> {
    const written = await this.#writeKnown(meta, prepared.method, prepared.data, prepared.digest);
    onBytes(prepared.digest.size);
    return written;
  }

  async addBuffer(meta: EntryMeta, data: Buffer): Promise<WrittenEntry> {
    const encoded = await this.#encodeSmall(data);
    return this.#writeKnown(meta, encoded.method, encoded.data, digestBuffer(data));
  }

  /** Streams a file of any size: header placeholder, data (stored or deflated on the fly), then the header patch. */
  async addStreamed(meta: EntryMeta, entry: SourceEntry, onBytes: BytesCallback): Promise<WrittenEntry> {
    this.#signal?.throwIfAborted();
    const shown = entry.sourcePath;
    const fh = await openSource(entry.sourcePath, shown);
    try {
      const size = await sourceSize(fh, shown);
      const choice: MethodChoice = this.#policy === 'store' ? { method: 'stored' } : await sampleFile(fh, size, shown);
      const method = choice.method === 'deflated' ? METHOD_DEFLATED : METHOD_STORED;
      const zip64 = needsZip64(size, method);
      const dos = toDosDateTime(meta.mtime);
      const offset = this.#offset;
      // a large stored entry starts at a page boundary: extraction copies it inside the kernel (kernel-copy.ts), and
      // a copy between two files at the same offset within a page moves whole pages (1 GiB: ~265 ms, else ~410 here)
      const padding = method === METHOD_STORED && size >= KERNEL_COPY_BYTES ? alignmentPadding(offset, meta.archivePath, zip64) : undefined;
      const placeholder = encodeLocalHeader({ name: meta.archivePath, method, dos, crc32: 0, size: 0, compressedSize: 0, zip64, padding });
      await this.#append(placeholder);
      const dataStart = this.#offset;

      const digest = new ContentDigest();
      const chunks = readChunks(fh, size, digest, shown, this.#signal);
      if (choice.method === 'stored') {
        for await (const buf of chunks) {
          await this.#append(buf);
          onBytes(buf.length);
        }
      } else {
        await this.#deflateParallel(chunks, choice.level, onBytes);
      }
      const compressedSize = this.#offset - dataStart;
      if (!zip64 && (compressedSize >= MAX_32 || digest.size >= MAX_32)) {
        // Cannot happen while needsZip64 is conservative and readChunks enforces the stat size; never write a wrong header.
        throw new MarError(
          'OUTPUT_FAILED',
          `${shown}: entry outgrew its zip header (size ${digest.size}); this is a bug, please report it`,
        );
      }
      const fd: FileDigest = { size: digest.size, crc32: digest.crc32, sha256: digest.sha256() };
      const header = encodeLocalHeader({
        name: meta.archivePath,
        method,
        dos,
        crc32: fd.crc32,
        size: fd.size,
        compressedSize,
        zip64,
        padding,
      });
      await this.#writeAt(header, offset);
      return this.#record(meta, method, fd, compressedSize, zip64, offset);
    } finally {
      await fh.close().catch(() => undefined);
    }
  }

  /**
   * pigz-style parallel deflate of one entry: each 1 MiB chunk is deflated on its own in the thread pool, primed
   * with the previous chunk's last 32 KiB as dictionary and ended with a sync flush (byte-aligned, not final);
   * the pieces are appended in order and an empty final block (03 00) ends the stream. The output is one valid
   * deflate stream, the same bytes on every run, and within a few bytes per MiB of a single-stream deflate.
   */
  async #deflateParallel(chunks: AsyncIterable<Buffer>, level: number, onBytes: BytesCallback): Promise<void> {
    const inflight: Promise<Buffer>[] = [];
    let dictionary: Buffer | undefined;
    try {
      for await (const buf of chunks) {
        // readChunks reuses its buffers, and this chunk is compressed later: copy it.
        const input = Buffer.from(buf);
        const p = deflateRawAsync(input, { level, finishFlush: zc.Z_SYNC_FLUSH, ...(dictionary ? { dictionary } : {}) });
        p.catch(() => undefined);
        inflight.push(p);
        dictionary = input.subarray(Math.max(0, input.length - DEFLATE_WINDOW));
        onBytes(buf.length);
        while (inflight.length >= PARALLEL_DEFLATES) await this.#append(await inflight.shift()!);
      }
      while (inflight.length) await this.#append(await inflight.shift()!);
      await this.#append(EMPTY_FINAL_BLOCK);
    } catch (err) {
      for (const p of inflight) p.catch(() => undefined);
      throw err;
    }
  }

  async finish(): Promise<number> {
    const cdOffset = this.#offset;
    // Write the central directory in batches, so 100k entries do not become 100k syscalls.
    let batch: Buffer[] = [];
    let batchBytes = 0;
    for (const rec of this.#central) {
      batch.push(rec);
      batchBytes += rec.length;
      if (batchBytes >= 1 << 20) {
        await this.#append(Buffer.concat(batch));
        batch = [];
        batchBytes = 0;
      }
    }
    if (batch.length) await this.#append(Buffer.concat(batch));
    await this.#append(
      encodeEnd({ entryCount: this.#central.length, centralDirectoryOffset: cdOffset, centralDirectorySize: this.#centralSize }),
    );
    try {
      // No fsync, like zip/MMS/TorchServe: the rename makes the result visible atomically; durability is the OS's job.
      await this.#fh.close();
    } catch (err) {
      throw new MarError('OUTPUT_FAILED', `cannot write ${this.#path}: ${describeFsError(err)}`, { cause: err });
    }
    this.#closed = true;
    return this.#offset;
  }

  async abort(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#fh.close().catch(() => undefined);
  }
}
