import { once } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';
import { crc32, createDeflateRaw, type DeflateRaw, constants as zc } from 'node:zlib';
import { describeFsError, MarError } from '../errors.js';
import type { ArchiveSink, BytesCallback, EntryMeta, WrittenEntry } from './archive-sink.js';
import { chooseFromSamples, DEFAULT_LEVEL, sampleFile } from './compression-policy.js';
import {
  ChunkFeeder,
  ContentDigest,
  digestBuffer,
  type FileDigest,
  openSource,
  readChunks,
  readWholeFile,
  sourceSize,
} from './read-source.js';
import type { SourceEntry } from './walk.js';

const BLOCK = 512;
/** tar's record size: GNU tar and Python pad archives to it. */
const RECORD = 10240;
/** The largest size a 12-byte octal field holds; bigger sizes go in a pax header. */
const MAX_OCTAL_SIZE = 0o77777777777;

function octal(buf: Buffer, value: number, offset: number, width: number): void {
  buf.write(`${value.toString(8).padStart(width - 1, '0')}\0`, offset, width, 'ascii');
}

function paxRecord(key: string, value: string): Buffer {
  const body = ` ${key}=${value}\n`;
  const bodyLen = Buffer.byteLength(body);
  let len = bodyLen + String(bodyLen).length;
  if (String(len).length !== String(len - bodyLen).length) len = bodyLen + String(len).length;
  return Buffer.from(`${len}${body}`, 'utf8');
}

/** Splits a path into ustar prefix/name, or undefined when it does not fit (then pax carries it). */
function splitUstarName(path: string): { prefix: string; name: string } | undefined {
  if (!/^[\x20-\x7e]*$/.test(path)) return undefined;
  if (path.length <= 100) return { prefix: '', name: path };
  for (let i = path.length - 1; i > 0; i--) {
    if (path[i] !== '/') continue;
    const prefix = path.slice(0, i);
    const name = path.slice(i + 1);
    if (prefix.length <= 155 && name.length <= 100 && name.length > 0) return { prefix, name };
  }
  return undefined;
}

interface HeaderFields {
  name: string;
  prefix: string;
  size: number;
  mode: number;
  mtimeSec: number;
  type: '0' | 'x';
}

function encodeHeaderBlock(h: HeaderFields): Buffer {
  const b = Buffer.alloc(BLOCK);
  b.write(h.name, 0, 100, 'utf8');
  octal(b, h.mode, 100, 8);
  octal(b, 0, 108, 8); // uid
  octal(b, 0, 116, 8); // gid
  octal(b, Math.min(h.size, MAX_OCTAL_SIZE), 124, 12);
  octal(b, Math.max(0, Math.min(h.mtimeSec, 0o77777777777)), 136, 12);
  b.fill(0x20, 148, 156); // checksum is computed with spaces in its field
  b.write(h.type, 156, 1, 'ascii');
  b.write('ustar\0', 257, 6, 'ascii');
  b.write('00', 263, 2, 'ascii');
  // uname/gname stay empty; devmajor/devminor zero.
  octal(b, 0, 329, 8);
  octal(b, 0, 337, 8);
  b.write(h.prefix, 345, 155, 'utf8');
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += b[i]!;
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
  return b;
}

/** ustar header(s) for a regular file, preceded by a pax header when the name or size does not fit ustar. */
export function encodeTarHeader(path: string, size: number, mode: number, mtimeSec: number): Buffer {
  const split = splitUstarName(path);
  const parts: Buffer[] = [];
  if (!split || size > MAX_OCTAL_SIZE) {
    const records = [
      split ? undefined : paxRecord('path', path),
      size > MAX_OCTAL_SIZE ? paxRecord('size', String(size)) : undefined,
    ].filter((r): r is Buffer => r !== undefined);
    const body = Buffer.concat(records);
    const paxName = `PaxHeader/${path.replace(/[^\x20-\x7e]/g, '_')}`.slice(0, 99);
    parts.push(encodeHeaderBlock({ name: paxName, prefix: '', size: body.length, mode: 0o644, mtimeSec, type: 'x' }));
    parts.push(body, Buffer.alloc(padding(body.length)));
  }
  const fallbackName = split ?? {
    prefix: '',
    name: Buffer.from(path, 'utf8')
      .subarray(0, 100)
      .toString('latin1')
      .replace(/[^\x20-\x7e]/g, '_'),
  };
  parts.push(encodeHeaderBlock({ name: fallbackName.name, prefix: fallbackName.prefix, size, mode, mtimeSec, type: '0' }));
  return Buffer.concat(parts);
}

function padding(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

export interface TarGzWriterOptions {
  /** Every entry goes under `<root>/` (TorchServe strips the first path component). */
  root: string;
  /** One mtime for every entry (seconds): SOURCE_DATE_EPOCH or now. */
  mtimeSec: number;
  signal?: AbortSignal;
}

export interface PreparedTarData {
  data: Buffer;
  digest: FileDigest;
  /** Whether the content compresses (selects deflate or stored blocks for its bytes). */
  compressible: boolean;
}

/** gzip header: deflate, no flags, mtime 0, no extra flags, OS 3 (Unix): nothing run-specific. */
const GZIP_HEADER = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
/** Largest payload of one stored deflate block. */
const STORED_BLOCK_MAX = 65535;

/** Deflate stored blocks (BFINAL=0) for `data`, starting on a byte boundary. */
function storedBlocks(data: Buffer): Buffer {
  const blocks = Math.max(1, Math.ceil(data.length / STORED_BLOCK_MAX));
  const out = Buffer.allocUnsafe(data.length + 5 * blocks);
  let o = 0;
  for (let i = 0; i < data.length || (i === 0 && data.length === 0); i += STORED_BLOCK_MAX) {
    const n = Math.min(STORED_BLOCK_MAX, data.length - i);
    out[o] = 0; // BFINAL 0, BTYPE 00, padding bits
    out.writeUInt16LE(n, o + 1);
    out.writeUInt16LE(~n & 0xffff, o + 3);
    data.copy(out, o + 5, i, i + n);
    o += 5 + n;
    if (data.length === 0) break;
  }
  return out.subarray(0, o);
}

/**
 * Writes `<root>/...` entries as a gzip'd tar in one gzip member (TorchServe's reader reads only the first).
 * We frame the gzip ourselves so incompressible entries (weights) go out as deflate *stored* blocks at memcpy
 * speed, while headers, code and text go through one zlib deflater; a Z_FULL_FLUSH before each stored run keeps
 * back-references from crossing it. The gzip header has mtime 0 and no name, so output is reproducible.
 */
export class TarGzWriter implements ArchiveSink<PreparedTarData> {
  readonly #deflater: DeflateRaw;
  readonly #feeder: ChunkFeeder;
  readonly #out: WriteStream;
  readonly #path: string;
  readonly #root: string;
  readonly #mtimeSec: number;
  readonly #signal: AbortSignal | undefined;
  #crc = 0;
  #tarBytes = 0;
  /** The deflater has input since its last full flush. */
  #dirty = false;
  #failure: unknown;

  private constructor(path: string, out: WriteStream, options: TarGzWriterOptions) {
    this.#path = path;
    this.#out = out;
    this.#root = options.root;
    this.#mtimeSec = options.mtimeSec;
    this.#signal = options.signal;
    this.#deflater = createDeflateRaw({ level: DEFAULT_LEVEL, chunkSize: 256 << 10 });
    this.#feeder = new ChunkFeeder(this.#deflater);
    const fail = (err: unknown): void => {
      this.#failure ??= err;
    };
    out.on('error', (err) => {
      fail(err);
      // Unblock anything waiting on the deflater: its pending writes now fail instead of waiting for a drain.
      this.#deflater.destroy();
    });
    this.#deflater.on('error', fail);
    this.#deflater.on('data', (b: Buffer) => {
      if (!out.write(b)) this.#deflater.pause();
    });
    out.on('drain', () => this.#deflater.resume());
    out.write(GZIP_HEADER);
  }

  static async create(path: string, options: TarGzWriterOptions): Promise<TarGzWriter> {
    const out = createWriteStream(path, { flags: 'wx', mode: 0o644 });
    try {
      await once(out, 'open');
    } catch (err) {
      throw new MarError('OUTPUT_FAILED', `cannot create ${path}: ${describeFsError(err)}`, { cause: err });
    }
    return new TarGzWriter(path, out, options);
  }

  #wrapWriteError(err: unknown): MarError {
    if (err instanceof MarError) return err;
    if (this.#signal?.aborted && this.#signal.reason instanceof MarError) return this.#signal.reason;
    return new MarError('OUTPUT_FAILED', `cannot write ${this.#path}: ${describeFsError(err)}`, { cause: err });
  }

  #check(): void {
    if (this.#failure) throw this.#wrapWriteError(this.#failure);
  }

  /** Writes bytes straight to the file (after everything the deflater has produced). */
  async #writeRaw(buf: Buffer): Promise<void> {
    this.#check();
    if (!this.#out.write(buf)) {
      try {
        await once(this.#out, 'drain', this.#signal ? { signal: this.#signal } : {});
      } catch (err) {
        throw this.#wrapWriteError(this.#failure ?? err);
      }
    }
  }

  /** Ends the current deflate run on a byte boundary with no references past it; waits until it is all in the file. */
  async #closeDeflateRun(): Promise<void> {
    if (!this.#dirty) return;
    this.#dirty = false;
    try {
      await this.#feeder.flush();
      await new Promise<void>((resolve) => this.#deflater.flush(zc.Z_FULL_FLUSH, () => resolve()));
      while (this.#deflater.readableLength > 0 || this.#deflater.isPaused()) {
        this.#check();
        if (this.#deflater.isPaused()) await once(this.#out, 'drain');
        else await new Promise((r) => setImmediate(r));
      }
    } catch (err) {
      throw this.#wrapWriteError(this.#failure ?? err);
    }
    this.#check();
  }

  /** Tar bytes that compress: through the deflater. `buf` may be reused by the caller after the next call. */
  async #compressible(buf: Buffer): Promise<void> {
    this.#check();
    this.#crc = crc32(buf, this.#crc);
    this.#tarBytes += buf.length;
    this.#dirty = true;
    try {
      await this.#feeder.write(buf);
    } catch (err) {
      throw this.#wrapWriteError(this.#failure ?? err);
    }
  }

  /** Tar bytes that do not compress: as stored blocks (copied, so `buf` is free on return). */
  async #incompressible(buf: Buffer): Promise<void> {
    this.#crc = crc32(buf, this.#crc);
    this.#tarBytes += buf.length;
    await this.#closeDeflateRun();
    await this.#writeRaw(storedBlocks(buf));
  }

  #header(meta: EntryMeta, size: number): Buffer {
    return encodeTarHeader(`${this.#root}/${meta.archivePath}`, size, meta.mode, this.#mtimeSec);
  }

  async #writeKnown(meta: EntryMeta, data: Buffer, digest: FileDigest, compressible: boolean): Promise<WrittenEntry> {
    this.#signal?.throwIfAborted();
    await this.#compressible(this.#header(meta, data.length));
    if (compressible) await this.#compressible(data);
    else await this.#incompressible(data);
    const pad = padding(data.length);
    if (pad) await this.#compressible(Buffer.alloc(pad));
    return { archivePath: meta.archivePath, size: digest.size, sha256: digest.sha256, method: 'stored', compressedSize: digest.size };
  }

  async prepare(entry: SourceEntry): Promise<PreparedTarData> {
    const { data, digest } = await readWholeFile(entry.sourcePath, entry.size, entry.sourcePath);
    const sample = data.length > 256 << 10 ? [data.subarray(0, 128 << 10), data.subarray(data.length - (128 << 10))] : [data];
    return { data, digest, compressible: chooseFromSamples(sample).method === 'deflated' };
  }

  async addPrepared(meta: EntryMeta, p: PreparedTarData, onBytes: BytesCallback): Promise<WrittenEntry> {
    const written = await this.#writeKnown(meta, p.data, p.digest, p.compressible);
    onBytes(p.digest.size);
    return written;
  }

  async addBuffer(meta: EntryMeta, data: Buffer): Promise<WrittenEntry> {
    return this.#writeKnown(meta, data, digestBuffer(data), true);
  }

  async addStreamed(meta: EntryMeta, entry: SourceEntry, onBytes: BytesCallback): Promise<WrittenEntry> {
    this.#signal?.throwIfAborted();
    const shown = entry.sourcePath;
    const fh = await openSource(entry.sourcePath, shown);
    try {
      const size = await sourceSize(fh, shown);
      const choice = await sampleFile(fh, size, shown);
      await this.#compressible(this.#header(meta, size));
      const digest = new ContentDigest();
      for await (const buf of readChunks(fh, size, digest, shown, this.#signal)) {
        if (choice.method === 'deflated') await this.#compressible(buf);
        else await this.#incompressible(buf);
        onBytes(buf.length);
      }
      const pad = padding(size);
      if (pad) await this.#compressible(Buffer.alloc(pad));
      return { archivePath: meta.archivePath, size: digest.size, sha256: digest.sha256(), method: 'stored', compressedSize: digest.size };
    } finally {
      await fh.close().catch(() => undefined);
    }
  }

  async finish(): Promise<number> {
    const end = 2 * BLOCK;
    const total = this.#tarBytes + end;
    await this.#compressible(Buffer.alloc(end + ((RECORD - (total % RECORD)) % RECORD)));
    this.#dirty = true;
    await this.#closeDeflateRun();
    // A final empty stored block ends the deflate stream; the deflater itself is never ended (no second final block).
    const trailer = Buffer.alloc(5 + 8);
    trailer.set([1, 0, 0, 0xff, 0xff], 0);
    trailer.writeUInt32LE(this.#crc >>> 0, 5);
    trailer.writeUInt32LE(this.#tarBytes % 2 ** 32, 9);
    await this.#writeRaw(trailer);
    this.#deflater.destroy();
    this.#out.end();
    try {
      await once(this.#out, 'finish');
    } catch (err) {
      throw this.#wrapWriteError(err);
    }
    this.#check();
    return this.#out.bytesWritten;
  }

  async abort(): Promise<void> {
    this.#deflater.destroy();
    if (this.#out.closed) return;
    // Wait for the fd to be closed, so the caller's cleanup (and an unmount) sees no open file.
    const closed = once(this.#out, 'close').catch(() => undefined);
    this.#out.destroy();
    await closed;
  }
}
