import { createWriteStream, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import { pipeline } from 'node:stream/promises';
import { constants as zc, createGzip, type Gzip, type ZlibParams } from 'node:zlib';
import { MarError, describeFsError } from '../errors.js';
import type { ArchiveSink, BytesCallback, EntryMeta, WrittenEntry } from './archive-sink.js';
import { DEFAULT_LEVEL, chooseFromSamples, sampleFile } from './compression-policy.js';
import { ChunkFeeder, ContentDigest, openSource, readChunks, readWholeFile, type FileDigest } from './read-source.js';
import type { SourceEntry } from './walk.js';

const BLOCK = 512;
/** tar's record size: GNU tar and Python pad archives to it. */
const RECORD = 10240;
/** The largest size a 12-byte octal field holds; bigger sizes go in a pax header. */
const MAX_OCTAL_SIZE = 0o77777777777;

function octal(buf: Buffer, value: number, offset: number, width: number): void {
  buf.write(value.toString(8).padStart(width - 1, '0') + '\0', offset, width, 'ascii');
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
  b.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'ascii');
  return b;
}

/** ustar header(s) for a regular file, preceded by a pax header when the name or size does not fit ustar. */
export function encodeTarHeader(path: string, size: number, mode: number, mtimeSec: number): Buffer {
  const split = splitUstarName(path);
  const parts: Buffer[] = [];
  if (!split || size > MAX_OCTAL_SIZE) {
    const records = [split ? undefined : paxRecord('path', path), size > MAX_OCTAL_SIZE ? paxRecord('size', String(size)) : undefined].filter(
      (r): r is Buffer => r !== undefined,
    );
    const body = Buffer.concat(records);
    const paxName = ('PaxHeader/' + path.replace(/[^\x20-\x7e]/g, '_')).slice(0, 99);
    parts.push(encodeHeaderBlock({ name: paxName, prefix: '', size: body.length, mode: 0o644, mtimeSec, type: 'x' }));
    parts.push(body, Buffer.alloc(padding(body.length)));
  }
  const fallbackName = split ?? { prefix: '', name: Buffer.from(path, 'utf8').subarray(0, 100).toString('latin1').replace(/[^\x20-\x7e]/g, '_') };
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
  /** Whether the content compresses (selects the gzip level for its bytes). */
  compressible: boolean;
}

/**
 * Writes `<root>/...` entries as a gzip'd tar. The gzip header has no name and mtime 0 (Node's zlib writes it so),
 * so with a fixed mtime the output is reproducible. Incompressible files are emitted as stored deflate blocks
 * (zlib level 0 via params()), so weights do not cost a 55 MB/s deflate pass; the stream stays one gzip member.
 */
export class TarGzWriter implements ArchiveSink<PreparedTarData> {
  readonly #gzip: Gzip;
  readonly #out: WriteStream;
  readonly #done: Promise<void>;
  readonly #path: string;
  readonly #root: string;
  readonly #mtimeSec: number;
  readonly #signal: AbortSignal | undefined;
  #level = DEFAULT_LEVEL;
  #tarBytes = 0;
  #failure: unknown;

  private constructor(path: string, out: WriteStream, options: TarGzWriterOptions) {
    this.#path = path;
    this.#out = out;
    this.#root = options.root;
    this.#mtimeSec = options.mtimeSec;
    this.#signal = options.signal;
    this.#gzip = createGzip({ level: DEFAULT_LEVEL, chunkSize: 256 << 10 });
    this.#done = pipeline(this.#gzip, out);
    this.#done.catch((err: unknown) => {
      this.#failure = err;
    });
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
    return new MarError('OUTPUT_FAILED', `cannot write ${this.#path}: ${describeFsError(err)}`, { cause: err });
  }

  async #write(buf: Buffer): Promise<void> {
    if (this.#failure) throw this.#wrapWriteError(this.#failure);
    this.#tarBytes += buf.length;
    if (!this.#gzip.write(buf)) {
      try {
        await once(this.#gzip, 'drain', { signal: this.#signal });
      } catch (err) {
        if (this.#signal?.aborted) throw this.#signal.reason;
        throw this.#wrapWriteError(this.#failure ?? err);
      }
    }
  }

  async #setLevel(level: number): Promise<void> {
    if (level === this.#level) return;
    this.#level = level;
    // Gzip has params() at runtime (it is a zlib stream); @types/node only declares it on Deflate.
    const gz = this.#gzip as unknown as ZlibParams;
    await new Promise<void>((resolve) => gz.params(level, zc.Z_DEFAULT_STRATEGY, resolve));
    if (this.#failure) throw this.#wrapWriteError(this.#failure);
  }

  #header(meta: EntryMeta, size: number): Buffer {
    return encodeTarHeader(`${this.#root}/${meta.archivePath}`, size, meta.mode, this.#mtimeSec);
  }

  async #writeKnown(meta: EntryMeta, data: Buffer, digest: FileDigest, compressible: boolean): Promise<WrittenEntry> {
    this.#signal?.throwIfAborted();
    await this.#write(this.#header(meta, data.length));
    await this.#setLevel(compressible ? DEFAULT_LEVEL : 0);
    await this.#write(data);
    const pad = padding(data.length);
    if (pad) await this.#write(Buffer.alloc(pad));
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
    const d = new ContentDigest();
    d.update(data);
    return this.#writeKnown(meta, data, { size: d.size, crc32: d.crc32, sha256: d.sha256() }, true);
  }

  async addStreamed(meta: EntryMeta, entry: SourceEntry, onBytes: BytesCallback): Promise<WrittenEntry> {
    this.#signal?.throwIfAborted();
    const shown = entry.sourcePath;
    const fh = await openSource(entry.sourcePath, shown);
    try {
      let size: number;
      try {
        size = (await fh.stat()).size;
      } catch (err) {
        throw new MarError('INPUT_INVALID', `cannot read ${shown}: ${describeFsError(err)}`, { cause: err });
      }
      const choice = await sampleFile(fh, size, shown);
      await this.#write(this.#header(meta, size));
      await this.#setLevel(choice.method === 'deflated' ? choice.level : 0);
      const digest = new ContentDigest();
      const feeder = new ChunkFeeder(this.#gzip);
      try {
        for await (const buf of readChunks(fh, size, digest, shown, this.#signal)) {
          this.#tarBytes += buf.length;
          await feeder.write(buf);
          onBytes(buf.length);
        }
        await feeder.flush();
      } catch (err) {
        throw this.#wrapWriteError(this.#failure ?? err);
      }
      const pad = padding(size);
      if (pad) await this.#write(Buffer.alloc(pad));
      return { archivePath: meta.archivePath, size: digest.size, sha256: digest.sha256(), method: 'stored', compressedSize: digest.size };
    } finally {
      await fh.close().catch(() => undefined);
    }
  }

  async finish(): Promise<number> {
    await this.#setLevel(DEFAULT_LEVEL);
    const end = 2 * BLOCK;
    const total = this.#tarBytes + end;
    await this.#write(Buffer.alloc(end + ((RECORD - (total % RECORD)) % RECORD)));
    this.#gzip.end();
    try {
      await this.#done;
    } catch (err) {
      throw this.#wrapWriteError(err);
    }
    return this.#out.bytesWritten;
  }

  async abort(): Promise<void> {
    this.#gzip.destroy();
    this.#out.destroy();
    await this.#done.catch(() => undefined);
  }
}
