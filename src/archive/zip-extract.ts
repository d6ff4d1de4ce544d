/**
 * Writing a zip's file entries at disk speed, for extract.ts. Every entry is read as a raw byte range of the archive
 * (ArchiveReader.rawRange/readRawAt) by a few workers at once:
 *
 * - stored entries of KERNEL_COPY_BYTES or more are copied inside the kernel by the caller's copier
 *   (kernel-copy.ts: Node 20 exposes no copy_file_range), which also gives their CRC-32;
 * - other stored entries (and those the copier cannot do) are copied in CHUNK_BYTES positional reads and writes; the
 *   chunks of one large entry run in parallel and their CRC-32s are combined (crc32-combine.ts): one read, one CRC
 *   pass, one write per 2 MiB;
 * - entries up to 2 MiB are read and inflated in one call (up to 64 KiB synchronously, with the open, write and
 *   close: thread-pool round trips cost more than that work), larger deflated ones stream through inflateRaw with
 *   256 KiB buffers, written as they come.
 *
 * Every byte is counted against the entry's recorded size (an entry never inflates past it), reported to the
 * caller's limit meter, and CRC-checked (integrity.ts EntryCheck) before the entry counts as written. Memory stays
 * bounded by WORKERS x CHUNK_BYTES plus one inflate stream per task in flight, whatever the archive size and however
 * many extractions run at once; the buffers zlib allocates for its output are collected every few MiB
 * (util/young-gc.ts), not only when V8 would.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { mkdir, open, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { promisify } from 'node:util';
import { crc32, createInflateRaw, inflateRaw, inflateRawSync } from 'node:zlib';
import { isMarError } from '../errors.js';
import { discardedBytes } from '../util/young-gc.js';
import { Crc32Combiner } from './crc32-combine.js';
import { CHUNK_BYTES, slots, WORKERS } from './extract-slots.js';
import { EntryCheck, entryDataError } from './integrity.js';
import { KERNEL_COPY_BYTES, type RangeCopier } from './kernel-copy.js';
import type { ArchiveEntryInfo, ArchiveReader, RawRange } from './read.js';

let extractions = 0;
/**
 * Compressed input read per step and inflated output per chunk of a streamed entry. zlib allocates a new output
 * buffer per chunk, which V8 frees only at its next GC (driven by some 64 MB of such external memory): 256 KiB
 * chunks peak ~15 MB lower than 1 MiB ones, at the same speed.
 */
const STREAM_BYTES = 256 << 10;
/** Entries up to this size are inflated and written synchronously (see #whole). */
const SYNC_BYTES = 64 << 10;
/** The most a worker runs synchronously before it lets the event loop serve others (a server keeps answering). */
const SYNC_SLICE_MS = 10;

/** Lets the event loop run (I/O callbacks, timers); resolves with the time it came back. */
async function turn(): Promise<number> {
  await new Promise((resolve) => setImmediate(resolve));
  return performance.now();
}

const inflateRawAsync = promisify(inflateRaw) as (buf: Buffer, options: { maxOutputLength: number }) => Promise<Buffer>;

/** One file entry to write, and where (already checked to be inside the target directory). */
export interface ZipFileTarget {
  entry: ArchiveEntryInfo;
  target: string;
  /** File mode to create it with. */
  mode: number;
}

export interface ZipWriteOptions {
  /** Every inflated (or copied) chunk's length before it is written; throw to stop (limits). */
  onBytes: (n: number) => void;
  /** Copies large stored entries inside the kernel (kernel-copy.ts); without one, every byte goes through here. */
  copier?: RangeCopier | null;
}

/** A stored entry larger than one chunk: its chunks are separate tasks that share the open file. */
class ChunkedFile {
  readonly file: ZipFileTarget;
  readonly check: EntryCheck;
  readonly crcs: number[] = [];
  remaining: number;
  #range: Promise<RawRange> | null = null;
  #handle: Promise<FileHandle> | null = null;

  constructor(archive: string, file: ZipFileTarget, chunks: number) {
    this.file = file;
    this.check = new EntryCheck(archive, file.entry);
    this.remaining = chunks;
  }

  range(reader: ArchiveReader): Promise<RawRange> {
    this.#range ??= reader.rawRange(this.file.entry);
    return this.#range;
  }

  handle(): Promise<FileHandle> {
    // 'wx': never write through something that already exists.
    this.#handle ??= open(this.file.target, 'wx', this.file.mode);
    return this.#handle;
  }

  /** Closes the file if it was opened (after a failure: errors no longer matter). */
  async close(): Promise<void> {
    const h = this.#handle;
    this.#handle = null;
    if (h) await (await h.catch(() => null))?.close().catch(() => undefined);
  }
}

type Task =
  | { kind: 'chunk'; file: ChunkedFile; index: number; offset: number; length: number }
  | { kind: 'kernel'; file: ZipFileTarget }
  | { kind: 'whole'; file: ZipFileTarget }
  | { kind: 'stream'; file: ZipFileTarget };

function plan(archive: string, files: readonly ZipFileTarget[], kernel: boolean): { tasks: Task[]; chunked: ChunkedFile[] } {
  const tasks: Task[] = [];
  const chunked: ChunkedFile[] = [];
  for (const f of files) {
    const { compressedSize, size, method } = f.entry;
    if (compressedSize <= CHUNK_BYTES && size <= CHUNK_BYTES) {
      tasks.push({ kind: 'whole', file: f });
    } else if (method === 'stored') {
      if (kernel && size >= KERNEL_COPY_BYTES) tasks.push({ kind: 'kernel', file: f });
      else tasks.push(...chunkTasks(archive, f, chunked));
    } else {
      tasks.push({ kind: 'stream', file: f });
    }
  }
  return { tasks, chunked };
}

/** A stored entry's chunk tasks (its ChunkedFile goes into `chunked`, closed if the extraction fails). */
function chunkTasks(archive: string, f: ZipFileTarget, chunked: ChunkedFile[]): Task[] {
  const { compressedSize } = f.entry;
  const count = Math.ceil(compressedSize / CHUNK_BYTES);
  const cf = new ChunkedFile(archive, f, count);
  chunked.push(cf);
  return Array.from({ length: count }, (_, i): Task => {
    const offset = i * CHUNK_BYTES;
    return { kind: 'chunk', file: cf, index: i, offset, length: Math.min(CHUNK_BYTES, compressedSize - offset) };
  });
}

async function readFully(reader: ArchiveReader, archive: string, entry: ArchiveEntryInfo, buf: Buffer, position: number): Promise<void> {
  let got = 0;
  while (got < buf.length) {
    const n = await reader.readRawAt(buf, got, buf.length - got, position + got);
    if (n === 0) throw entryDataError(archive, entry, new Error('unexpected end of file'));
    got += n;
  }
}

async function writeFully(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  for (let done = 0; done < buf.length; ) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done, position + done);
    done += bytesWritten;
  }
}

function writeSmallFile(file: ZipFileTarget, data: Buffer): void {
  // 'wx': never write through something that already exists.
  const fd = openSync(file.target, 'wx', file.mode);
  try {
    for (let done = 0; done < data.length; ) done += writeSync(fd, data, done, data.length - done, done);
  } finally {
    closeSync(fd);
  }
}

/** zlib's own errors are a corrupt entry; ours (limits, size checks) pass through. */
function dataError(archive: string, entry: ArchiveEntryInfo, err: unknown): unknown {
  return isMarError(err) ? err : entryDataError(archive, entry, err);
}

class ZipWriter {
  readonly #reader: ArchiveReader;
  readonly #archive: string;
  readonly #onBytes: (n: number) => void;
  readonly #combiner = new Crc32Combiner();
  readonly #copier: RangeCopier | null;
  /** The chunked files of this extraction, closed if it fails (an entry the copier could not do adds its own). */
  readonly chunked: ChunkedFile[];

  constructor(reader: ArchiveReader, archive: string, options: ZipWriteOptions, chunked: ChunkedFile[]) {
    this.#reader = reader;
    this.#archive = archive;
    this.#onBytes = options.onBytes;
    this.#copier = options.copier ?? null;
    this.chunked = chunked;
  }

  /** Runs `task`; resolves with the tasks that replace it, if any (an entry the copier could not do, in chunks). */
  async run(task: Task, buffer: () => Buffer): Promise<Task[] | undefined> {
    if (task.kind === 'chunk') await this.#chunk(task, buffer());
    else if (task.kind === 'kernel') return this.#kernel(task.file);
    else if (task.kind === 'whole') await this.#whole(task.file, buffer());
    else await this.#stream(task.file);
    return undefined;
  }

  async #kernel(file: ZipFileTarget): Promise<Task[] | undefined> {
    const { entry } = file;
    const check = new EntryCheck(this.#archive, entry);
    const range = await this.#reader.rawRange(entry);
    check.count(range.end - range.start);
    this.#onBytes(range.end - range.start);
    // 'wx': never write through something that already exists; the copier only opens it
    await (await open(file.target, 'wx', file.mode)).close();
    const r = await this.#copier!.copy({ source: this.#archive, start: range.start, length: range.end - range.start, target: file.target });
    if ('crc' in r) {
      check.finish(r.crc);
      return undefined;
    }
    // copied here instead, from the start
    await unlink(file.target);
    return chunkTasks(this.#archive, file, this.chunked);
  }

  async #chunk(task: Extract<Task, { kind: 'chunk' }>, buffer: Buffer): Promise<void> {
    const { file } = task;
    const range = await file.range(this.#reader);
    const fh = await file.handle();
    const data = buffer.subarray(0, task.length);
    await readFully(this.#reader, this.#archive, file.file.entry, data, range.start + task.offset);
    file.check.count(data.length);
    this.#onBytes(data.length);
    // The write goes to the thread pool first, and the CRC runs on this thread while the kernel copies the same bytes
    // (neither changes them). CRC threads (worker_threads) were measured: no faster on 2 cores, and 9 MB more RSS.
    const written = writeFully(fh, data, task.offset);
    file.crcs[task.index] = crc32(data);
    await written;
    if (--file.remaining > 0) return;
    const pieces = file.crcs.map((c, i): [number, number] => [c, Math.min(CHUNK_BYTES, file.file.entry.compressedSize - i * CHUNK_BYTES)]);
    file.check.finish(this.#combiner.combineAll(pieces));
    await file.close();
  }

  async #whole(file: ZipFileTarget, buffer: Buffer): Promise<void> {
    const { entry } = file;
    const check = new EntryCheck(this.#archive, entry);
    const range = await this.#reader.rawRange(entry);
    // compressedSize <= CHUNK_BYTES (plan), and yauzl checked that the range is that long
    const raw = buffer.subarray(0, range.end - range.start);
    await readFully(this.#reader, this.#archive, entry, raw, range.start);
    // Small entries synchronously: a thread-pool round trip per open, write, close and inflate costs far more than
    // the work (2,000 small files: 3x faster). The caller yields to the event loop between them.
    const small = entry.size <= SYNC_BYTES;
    let data: Buffer = raw;
    if (entry.method === 'deflated') {
      try {
        // One byte over the recorded size is enough to know it lies: never inflate further than that.
        const options = { maxOutputLength: entry.size + 1 };
        data = small ? inflateRawSync(raw, options) : await inflateRawAsync(raw, options);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') check.count(entry.size + 1);
        throw dataError(this.#archive, entry, err);
      }
    }
    check.count(data.length);
    this.#onBytes(data.length);
    check.finish(check.hasCrc ? crc32(data) : 0);
    if (small) writeSmallFile(file, data);
    else {
      const fh = await open(file.target, 'wx', file.mode);
      try {
        await writeFully(fh, data, 0);
      } finally {
        await fh.close();
      }
    }
    // inflated into a buffer of its own (stored data is in the reused chunk buffer)
    if (data !== raw) discardedBytes(data.length);
  }

  async #stream(file: ZipFileTarget): Promise<void> {
    const { entry } = file;
    const check = new EntryCheck(this.#archive, entry);
    const range = await this.#reader.rawRange(entry);
    const fh = await open(file.target, 'wx', file.mode);
    const inflate = createInflateRaw({ chunkSize: STREAM_BYTES });
    let crc = 0;
    const written = (async () => {
      let position = 0;
      for await (const out of inflate as AsyncIterable<Buffer>) {
        check.count(out.length);
        this.#onBytes(out.length);
        crc = crc32(out, crc);
        await writeFully(fh, out, position);
        position += out.length;
        // zlib allocated it for this chunk
        discardedBytes(out.length);
      }
    })();
    // awaited below, but it may fail while we are reading: not an unhandled rejection meanwhile
    written.catch(() => undefined);
    // A write's callback comes once zlib has consumed that input: two input buffers, one read while the other inflates.
    const fed = (buf: Buffer): Promise<void> =>
      new Promise((resolve, reject) => inflate.write(buf, (err) => (err ? reject(err) : resolve())));
    const buffers = [Buffer.allocUnsafe(STREAM_BYTES), Buffer.allocUnsafe(STREAM_BYTES)];
    try {
      let feeding: Promise<void> = Promise.resolve();
      for (let pos = range.start, i = 0; pos < range.end; pos += STREAM_BYTES, i++) {
        const buf = buffers[i % 2]!.subarray(0, Math.min(STREAM_BYTES, range.end - pos));
        await readFully(this.#reader, this.#archive, entry, buf, pos);
        // the output side failing (a limit, the size check, the disk) ends the feeding too
        await Promise.race([feeding, written]);
        feeding = fed(buf);
        feeding.catch(() => undefined);
      }
      await Promise.race([feeding, written]);
      inflate.end();
      await written;
      check.finish(crc);
    } catch (err) {
      inflate.destroy();
      await written.catch(() => undefined);
      throw dataError(this.#archive, entry, err);
    } finally {
      await fh.close();
    }
  }
}

/**
 * Writes every file entry to its target (directories for them are created first). Resolves once all are written
 * and checked; on the first failure the workers stop taking tasks, the files in progress are closed, and the error
 * is thrown: the caller removes its temp directory.
 */
export async function writeZipFiles(
  reader: ArchiveReader,
  archive: string,
  files: readonly ZipFileTarget[],
  options: ZipWriteOptions,
): Promise<{ files: number; bytes: number }> {
  const dirs = [...new Set(files.map((f) => dirname(f.target)))].sort();
  for (const d of dirs) await mkdir(d, { recursive: true });
  const { tasks, chunked } = plan(archive, files, (options.copier ?? null) !== null);
  const writer = new ZipWriter(reader, archive, options, chunked);
  const priority = extractions++;
  let next = 0;
  let failure: { err: unknown } | null = null;
  const worker = async (): Promise<void> => {
    let sliceStart = performance.now();
    while (failure === null && next < tasks.length) {
      // Raw reads of small entries resolve from the read window without I/O: without this, a run of small files
      // would keep the event loop to itself until the last one. Between small files, and while no other extraction
      // waits, a worker yields without its slot, so the chunk buffers go whenever all do (2,000 small files peak
      // 15 MB lower than with the buffers held throughout); between chunks, or while another extraction waits, with it
      // (the chunks reuse their buffers; the slot would go to the other extraction).
      if (performance.now() - sliceStart > SYNC_SLICE_MS && !slots.contended && tasks[next]?.kind !== 'chunk') {
        sliceStart = await turn();
      }
      await slots.take(priority);
      if (performance.now() - sliceStart > SYNC_SLICE_MS) sliceStart = await turn();
      let buf: Buffer | null = null;
      try {
        // checked again: the slot may have come after another worker of this extraction failed or took the last task
        if (failure !== null || next >= tasks.length) continue;
        const task = tasks[next++]!;
        const instead = await writer.run(task, () => (buf ??= slots.buffer()));
        if (instead) tasks.push(...instead);
      } catch (err) {
        failure ??= { err };
      } finally {
        if (buf) slots.returnBuffer(buf);
        slots.give();
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(WORKERS, Math.max(1, tasks.length)) }, worker));
  if (failure !== null) {
    await Promise.all(chunked.map((c) => c.close()));
    throw (failure as { err: unknown }).err;
  }
  return { files: files.length, bytes: files.reduce((n, f) => n + f.entry.size, 0) };
}
