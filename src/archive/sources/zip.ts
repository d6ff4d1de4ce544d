/**
 * Zip (.mar) source: entries come from the central directory (yauzl), read through a 1 MiB window; nothing else
 * is touched until an entry is opened. Names and modes are mapped the way the Java servers' unzip sees them.
 */
import { close as fsClose, open as fsOpen, read as fsRead, fstat } from 'node:fs';
import { createRequire } from 'node:module';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import type Yauzl from 'yauzl';
import { MarError } from '../../errors.js';
import { entryDataError } from '../integrity.js';
import { type ArchiveLimits, checkEntryCount, type LimitHint } from '../limits.js';
import type { ArchiveEntryInfo, ArchiveSource, LocalHeaderInfo, RawRange } from './source.js';

const S_IFMT = 0o170000;
const S_IFLNK = 0o120000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;

const CP437_HIGH =
  'ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒáíóúñÑªº¿⌐¬½¼¡«»░▒▓│┤╡╢╖╕╣║╗╝╜╛┐└┴┬├─┼╞╟╚╔╩╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u00a0';

const utf8Strict = new TextDecoder('utf-8', { fatal: true });

/** Decodes a zip name: UTF-8 when the bytes are valid UTF-8 (what Java assumes), otherwise CP437 for display. */
export function decodeZipName(raw: Buffer): { name: string; validUtf8: boolean } {
  try {
    return { name: utf8Strict.decode(raw), validUtf8: true };
  } catch {
    let name = '';
    for (const b of raw) name += b < 0x80 ? String.fromCharCode(b) : CP437_HIGH[b - 0x80];
    return { name, validUtf8: false };
  }
}

function zipError(path: string, err: unknown): MarError {
  if (err instanceof MarError) return err;
  const msg = (err as Error)?.message ?? String(err);
  return new MarError('ARCHIVE_CORRUPT', `${path} is not a readable zip (${msg}); it may be truncated: rebuild or re-download it`, {
    cause: err,
  });
}

const READ_WINDOW_BYTES = 1 << 20;
const STREAM_CHUNK_BYTES = 256 << 10;
const SMALL_RANGE_BYTES = 64 << 10;
const openFd = promisify(fsOpen);
const fstatFd = promisify(fstat);

/**
 * yauzl's file reader issues one read per central-directory record (two per entry); reading through a
 * 1 MiB window instead makes listing 70,000 entries a few dozen reads. Data streams read the fd directly.
 * yauzl (CommonJS, ~15 ms to load) is required on the first zip opened: a server of directory models or a
 * warm model cache never loads it.
 */
function windowedReaderClass() {
  const yauzl = requireYauzl();
  class WindowedFileReader extends yauzl.RandomAccessReader {
    readonly #fd: number;
    #window: Buffer = Buffer.alloc(0);
    #windowStart = 0;

    constructor(fd: number) {
      super();
      this.#fd = fd;
    }

    override _readStreamForRange(start: number, end: number): Readable {
      // Positional reads on the shared fd; unlike fs.ReadStream, destroying this never closes the fd.
      const fd = this.#fd;
      if (end - start <= SMALL_RANGE_BYTES) {
        // Small entries come through the window too: neighbours share one read.
        const out = new Readable({ read() {} });
        const buf = Buffer.allocUnsafe(end - start);
        this.read(buf, 0, buf.length, start, (err) => {
          if (err) {
            out.destroy(err);
            return;
          }
          out.push(buf);
          out.push(null);
        });
        return out;
      }
      let pos = start;
      return new Readable({
        highWaterMark: STREAM_CHUNK_BYTES,
        read(size: number): void {
          const len = Math.min(Math.max(size, STREAM_CHUNK_BYTES), end - pos);
          if (len <= 0) {
            this.push(null);
            return;
          }
          const buf = Buffer.allocUnsafe(len);
          fsRead(fd, buf, 0, len, pos, (err, n) => {
            if (err) return this.destroy(err);
            if (n === 0) return this.destroy(new Error('unexpected end of file'));
            pos += n;
            this.push(n < len ? buf.subarray(0, n) : buf);
          });
        },
      });
    }

    override read(buffer: Buffer, offset: number, length: number, position: number, callback: (err: Error | null) => void): void {
      const w = this.#window;
      if (position >= this.#windowStart && position + length <= this.#windowStart + w.length) {
        w.copy(buffer, offset, position - this.#windowStart, position - this.#windowStart + length);
        // Asynchronous like a real read, so long chains of small reads never deepen the stack.
        queueMicrotask(() => callback(null));
        return;
      }
      const size = Math.max(length, READ_WINDOW_BYTES);
      const fresh = Buffer.allocUnsafe(size);
      const fill = (got: number): void => {
        fsRead(this.#fd, fresh, got, size - got, position + got, (err, n) => {
          if (err) return callback(err);
          if (n > 0 && got + n < size) return fill(got + n);
          const total = got + n;
          if (total < length) return callback(new Error('unexpected EOF'));
          this.#window = fresh.subarray(0, total);
          this.#windowStart = position;
          fresh.copy(buffer, offset, 0, length);
          callback(null);
        });
      };
      fill(0);
    }

    /** Raw bytes at a position: small reads through the window (neighbouring small entries share one read), large ones straight from the fd. */
    readAt(buffer: Buffer, offset: number, length: number, position: number): Promise<number> {
      return new Promise((resolvePromise, reject) => {
        if (length <= SMALL_RANGE_BYTES) {
          this.read(buffer, offset, length, position, (err) => (err ? reject(err) : resolvePromise(length)));
          return;
        }
        fsRead(this.#fd, buffer, offset, length, position, (err, n) => (err ? reject(err) : resolvePromise(n)));
      });
    }

    override close(callback: (err: Error | null) => void): void {
      fsClose(this.#fd, (err) => callback(err ?? null));
    }
  }
  return WindowedFileReader;
}

let readerClass: ReturnType<typeof windowedReaderClass> | null = null;
type WindowedFileReader = InstanceType<ReturnType<typeof windowedReaderClass>>;

function requireYauzl(): typeof Yauzl {
  return createRequire(import.meta.url)('yauzl') as typeof Yauzl;
}

async function openZip(path: string): Promise<{ zip: Yauzl.ZipFile; reader: WindowedFileReader }> {
  // A raw fd, not a FileHandle: the reader owns it and closes it when yauzl releases the reader.
  const fd = await openFd(path, 'r');
  let size: number;
  try {
    size = (await fstatFd(fd)).size;
  } catch (err) {
    fsClose(fd, () => undefined);
    throw err;
  }
  readerClass ??= windowedReaderClass();
  const reader = new readerClass(fd);
  return new Promise((resolvePromise, reject) => {
    requireYauzl().fromRandomAccessReader(
      reader,
      size,
      { lazyEntries: true, autoClose: false, decodeStrings: false, validateEntrySizes: false, strictFileNames: false },
      (err, zip) => {
        if (err || !zip) {
          fsClose(fd, () => undefined);
          reject(err);
        } else resolvePromise({ zip, reader });
      },
    );
  });
}

function readCentralDirectory(
  zip: Yauzl.ZipFile,
  path: string,
  limits: Pick<ArchiveLimits, 'maxEntries'>,
  hint: LimitHint,
): Promise<Yauzl.Entry[]> {
  // The end record says how many entries follow: refuse a huge count before reading (and holding) any of them.
  checkEntryCount(path, zip.entryCount, limits, hint);
  return new Promise((resolvePromise, reject) => {
    const out: Yauzl.Entry[] = [];
    zip.on('entry', (e: Yauzl.Entry) => {
      out.push(e);
      zip.readEntry();
    });
    zip.once('end', () => resolvePromise(out));
    zip.once('error', reject);
    zip.readEntry();
  });
}

/**
 * Where the servers' unzip (`new File(dest, name)`) puts an entry: `./` and empty segments vanish, so
 * `./MAR-INF/MANIFEST.json` is the manifest. Backslashes stay literal, as on a Linux server.
 */
function zipServerPath(name: string, isDirectory: boolean): string {
  const joined = name
    .split('/')
    .filter((s) => s !== '' && s !== '.')
    .join('/');
  if (joined === '') return name;
  return isDirectory ? `${joined}/` : joined;
}

function zipEntryInfo(e: Yauzl.Entry, index: number): ArchiveEntryInfo {
  const rawName = e.fileName as unknown as Buffer;
  const { name, validUtf8 } = decodeZipName(rawName);
  const flags = e.generalPurposeBitFlag;
  const madeBy = e.versionMadeBy >> 8;
  // Unix (3) and macOS (19) store st_mode in the high 16 bits of the external attributes.
  const mode = madeBy === 3 || madeBy === 19 ? (e.externalFileAttributes >>> 16) & 0xffff : undefined;
  const fmt = mode === undefined ? undefined : mode & S_IFMT;
  const isSymlink = fmt === S_IFLNK;
  const isDirectory = name.endsWith('/') || fmt === S_IFDIR;
  // A FIFO, device or socket mode (0 means "no type recorded", a plain file): not a file, whatever unzip makes of it.
  const isSpecial = !isSymlink && !isDirectory && fmt !== undefined && fmt !== 0 && fmt !== S_IFREG;
  const info: ArchiveEntryInfo = {
    index,
    path: zipServerPath(name, isDirectory),
    rawPath: name,
    type: isSymlink ? 'symlink' : isDirectory ? 'directory' : isSpecial ? 'other' : 'file',
    isDirectory,
    isSymlink,
    size: e.uncompressedSize,
    compressedSize: e.compressedSize,
    method: e.compressionMethod === 0 ? 'stored' : e.compressionMethod === 8 ? 'deflated' : 'other',
    compressionMethod: e.compressionMethod,
    crc32: e.crc32,
    rawName,
    flags,
    hasDataDescriptor: (flags & 0x8) !== 0,
    utf8Flag: (flags & 0x800) !== 0,
    encrypted: (flags & 0x1) !== 0,
    nameValidUtf8: validUtf8,
  };
  if (mode !== undefined) info.mode = mode;
  try {
    info.mtime = e.getLastModDate({ timezone: 'UTC' });
  } catch {
    // a garbage DOS date is not worth failing a listing for
  }
  return info;
}

class ZipSource implements ArchiveSource {
  readonly entries: ArchiveEntryInfo[];
  readonly tgzRoot = null;
  readonly #path: string;
  readonly #zip: Yauzl.ZipFile;
  readonly #zipEntries: Yauzl.Entry[];
  readonly #reader: WindowedFileReader;

  constructor(path: string, zip: Yauzl.ZipFile, reader: WindowedFileReader, zipEntries: Yauzl.Entry[]) {
    this.#path = path;
    this.#zip = zip;
    this.#reader = reader;
    this.#zipEntries = zipEntries;
    this.entries = zipEntries.map(zipEntryInfo);
  }

  cached(): undefined {
    return undefined;
  }

  #assertReadable(entry: ArchiveEntryInfo): void {
    if (entry.encrypted)
      throw new MarError('ARCHIVE_UNSUPPORTED', `${this.#path}: entry ${entry.rawPath} is encrypted; model archives must not be encrypted`);
    if (entry.method === 'other') {
      throw new MarError(
        'ARCHIVE_UNSUPPORTED',
        `${this.#path}: entry ${entry.rawPath} uses compression method ${entry.compressionMethod}; only stored (0) and deflated (8) are readable by the servers`,
      );
    }
  }

  async openRaw(entry: ArchiveEntryInfo): Promise<Readable> {
    const ze = this.#zipEntries[entry.index]!;
    this.#assertReadable(entry);
    return new Promise((resolvePromise, reject) => {
      this.#zip.openReadStream(ze, (err, stream) =>
        err || !stream ? reject(entryDataError(this.#path, entry, err)) : resolvePromise(stream),
      );
    });
  }

  rawRange(entry: ArchiveEntryInfo): Promise<RawRange> {
    const ze = this.#zipEntries[entry.index]!;
    this.#assertReadable(entry);
    // yauzl reads the local header and checks that the data lies inside the file.
    return new Promise((resolvePromise, reject) => {
      this.#zip.readLocalFileHeader(ze, { minimal: true }, (err, h) => {
        if (err || !h) return reject(entryDataError(this.#path, entry, err));
        resolvePromise({ start: h.fileDataStart, end: h.fileDataStart + entry.compressedSize });
      });
    });
  }

  readAt(buffer: Buffer, offset: number, length: number, position: number): Promise<number> {
    return this.#reader.readAt(buffer, offset, length, position);
  }

  readLocalHeader(entry: ArchiveEntryInfo): Promise<LocalHeaderInfo> {
    const ze = this.#zipEntries[entry.index]!;
    return new Promise((resolvePromise, reject) => {
      this.#zip.readLocalFileHeader(ze, {}, (err, h) => {
        if (err || !h) return reject(entryDataError(this.#path, entry, err));
        resolvePromise({
          flags: h.generalPurposeBitFlag,
          compressionMethod: h.compressionMethod,
          rawName: h.fileName as unknown as Buffer,
          crc32: h.crc32,
          compressedSize: h.compressedSize,
          size: h.uncompressedSize,
        });
      });
    });
  }

  close(): void {
    this.#zip.close();
  }
}

/** Opens a zip and reads its central directory; an unreadable one is ARCHIVE_CORRUPT. */
export async function openZipSource(path: string, limits: Pick<ArchiveLimits, 'maxEntries'>, hint: LimitHint): Promise<ArchiveSource> {
  let zip: Yauzl.ZipFile | undefined;
  try {
    const opened = await openZip(path);
    zip = opened.zip;
    return new ZipSource(path, zip, opened.reader, await readCentralDirectory(zip, path, limits, hint));
  } catch (err) {
    zip?.close();
    throw zipError(path, err);
  }
}
