/**
 * ArchiveReader: one read-only view over the three shapes a model comes in: a zip (.mar), a gzip tar
 * (.tar.gz) and an unpacked directory. Zips are read from the central directory (nothing else is touched
 * until an entry is opened), tars by one streaming scan, directories by an lstat walk.
 */
import { close as fsClose, createReadStream, fstat, open as fsOpen, read as fsRead } from 'node:fs';
import { promisify } from 'node:util';
import { lstat, open as openFile, readdir, readlink, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, Readable, Transform, type TransformCallback } from 'node:stream';
import { crc32, createGunzip } from 'node:zlib';
import type { ReadEntry } from 'tar';
import yauzl from 'yauzl';
import { describeFsError, MarError } from '../errors.js';
import { checkEntryPath } from './safe-path.js';

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

/** Gets every entry's data in archive order; `stream` is null for directories and links. */
export type EntryVisitor = (entry: ArchiveEntryInfo, stream: Readable | null) => Promise<void>;

const ZIP_MAGIC = [Buffer.from('PK\x03\x04', 'latin1'), Buffer.from('PK\x05\x06', 'latin1'), Buffer.from('PK\x07\x08', 'latin1')];
const S_IFMT = 0o170000;
const S_IFLNK = 0o120000;
const S_IFDIR = 0o040000;
/** Small tar members are kept from the listing scan so manifest/handler/config reads need no second pass. */
const TGZ_CACHE_ENTRY_BYTES = 1 << 20;
const TGZ_CACHE_TOTAL_BYTES = 32 << 20;
export const DEFAULT_READ_ENTRY_MAX_BYTES = 64 << 20;

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

/** Detects the archive format from magic bytes (not the extension); a directory is an unpacked archive. */
export async function detectArchiveKind(path: string): Promise<ArchiveKind> {
  let st;
  try {
    st = await stat(path);
  } catch (err) {
    throw new MarError('INPUT_NOT_FOUND', `cannot read ${path}: ${describeFsError(err)}; check the path`, { cause: err });
  }
  if (st.isDirectory()) return 'dir';
  if (!st.isFile()) throw new MarError('ARCHIVE_UNSUPPORTED', `${path} is not a regular file or directory; pass a .mar, .tar.gz or model directory`);
  const head = Buffer.alloc(4);
  let fh;
  try {
    fh = await openFile(path, 'r');
    await fh.read(head, 0, 4, 0);
  } catch (err) {
    throw new MarError('INPUT_NOT_FOUND', `cannot read ${path}: ${describeFsError(err)}`, { cause: err });
  } finally {
    await fh?.close();
  }
  if (st.size === 0) throw new MarError('ARCHIVE_CORRUPT', `${path} is empty; rebuild or re-download the archive`);
  if (ZIP_MAGIC.some((m) => head.equals(m))) return 'zip';
  if (head[0] === 0x1f && head[1] === 0x8b) return 'tgz';
  throw new MarError(
    'ARCHIVE_UNSUPPORTED',
    `${path} is neither a zip (.mar) nor a gzipped tar (.tar.gz) (starts with 0x${head.toString('hex')}); pass a .mar, .tar.gz or model directory`,
  );
}

function zipError(path: string, err: unknown): MarError {
  if (err instanceof MarError) return err;
  const msg = (err as Error)?.message ?? String(err);
  return new MarError('ARCHIVE_CORRUPT', `${path} is not a readable zip (${msg}); it may be truncated: rebuild or re-download it`, { cause: err });
}

const READ_WINDOW_BYTES = 1 << 20;
const STREAM_CHUNK_BYTES = 256 << 10;
const SMALL_RANGE_BYTES = 64 << 10;
const openFd = promisify(fsOpen);
const fstatFd = promisify(fstat);

/**
 * yauzl's file reader issues one read per central-directory record (two per entry); reading through a
 * 1 MiB window instead makes listing 70,000 entries a few dozen reads. Data streams read the fd directly.
 */
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
      this.read(buf, 0, buf.length, start, (err) => (err ? out.destroy(err) : (out.push(buf), out.push(null))));
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

  override close(callback: (err: Error | null) => void): void {
    fsClose(this.#fd, (err) => callback(err ?? null));
  }
}

async function openZip(path: string): Promise<yauzl.ZipFile> {
  // A raw fd, not a FileHandle: the reader owns it and closes it when yauzl releases the reader.
  const fd = await openFd(path, 'r');
  let size: number;
  try {
    size = (await fstatFd(fd)).size;
  } catch (err) {
    fsClose(fd, () => undefined);
    throw err;
  }
  const reader = new WindowedFileReader(fd);
  return new Promise((resolvePromise, reject) => {
    yauzl.fromRandomAccessReader(
      reader,
      size,
      { lazyEntries: true, autoClose: false, decodeStrings: false, validateEntrySizes: false, strictFileNames: false },
      (err, zip) => {
        if (err || !zip) {
          fsClose(fd, () => undefined);
          reject(err);
        } else resolvePromise(zip);
      },
    );
  });
}

function readCentralDirectory(zip: yauzl.ZipFile): Promise<yauzl.Entry[]> {
  return new Promise((resolvePromise, reject) => {
    const out: yauzl.Entry[] = [];
    zip.on('entry', (e: yauzl.Entry) => {
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
  const joined = name.split('/').filter((s) => s !== '' && s !== '.').join('/');
  if (joined === '') return name;
  return isDirectory ? joined + '/' : joined;
}

function zipEntryInfo(e: yauzl.Entry, index: number): ArchiveEntryInfo {
  const rawName = e.fileName as unknown as Buffer;
  const { name, validUtf8 } = decodeZipName(rawName);
  const flags = e.generalPurposeBitFlag;
  const madeBy = e.versionMadeBy >> 8;
  // Unix (3) and macOS (19) store st_mode in the high 16 bits of the external attributes.
  const mode = madeBy === 3 || madeBy === 19 ? (e.externalFileAttributes >>> 16) & 0xffff : undefined;
  const isSymlink = mode !== undefined && (mode & S_IFMT) === S_IFLNK;
  const isDirectory = name.endsWith('/') || (mode !== undefined && (mode & S_IFMT) === S_IFDIR);
  const info: ArchiveEntryInfo = {
    index,
    path: zipServerPath(name, isDirectory),
    rawPath: name,
    type: isSymlink ? 'symlink' : isDirectory ? 'directory' : 'file',
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

function tarType(t: string): EntryType {
  switch (t) {
    case 'File':
    case 'OldFile':
    case 'ContiguousFile':
      return 'file';
    case 'Directory':
    case 'GNUDumpDir':
      return 'directory';
    case 'SymbolicLink':
      return 'symlink';
    case 'Link':
      return 'hardlink';
    default:
      return 'other';
  }
}

/** Strips leading `./` segments, as both tar tools and TorchServe treat them as the archive root. */
function stripDotSlash(p: string): string {
  let s = p;
  while (s.startsWith('./')) s = s.slice(2);
  return s;
}

/**
 * The single top-level directory every member of a tar lives in (`<model-name>/` as the archivers write it),
 * or null when members sit at the top level or under several roots.
 */
export function findTgzRoot(rawPaths: readonly string[]): string | null {
  let root: string | null = null;
  let sawChild = false;
  for (const raw of rawPaths) {
    const p = stripDotSlash(raw);
    if (p === '' || p === '.') continue;
    const slash = p.indexOf('/');
    const first = slash < 0 ? p : p.slice(0, slash);
    const rest = slash < 0 ? '' : p.slice(slash + 1);
    if (root === null) root = first;
    else if (root !== first) return null;
    if (rest === '') {
      // Only the root directory's own entry may sit at the top; a top-level file means there is no root.
      if (slash < 0) return null;
    } else sawChild = true;
  }
  if (!root || !sawChild || root === '..') return null;
  return root;
}

/** What TorchServe turns a tar member name into: everything up to the first `/` is dropped. */
export function torchServeTarPath(raw: string): string {
  return raw.slice(raw.indexOf('/') + 1);
}

interface TgzScanOptions {
  /** Called with every chunk of decompressed tar data; throw to abort (limits). */
  onInflated?: (bytes: number) => void;
}

interface TarMember {
  rawPath: string;
  type: EntryType;
  size: number;
  mode?: number;
  mtime?: Date;
  linkTarget?: string;
}

/**
 * One streaming pass over a .tar.gz. The visitor gets each member in order and must consume its data
 * (pipe or resume); visits are serialised, so the next member waits (with backpressure) until the visitor resolves.
 */
export async function scanTgz(
  path: string,
  visit: (member: TarMember, data: ReadEntry) => Promise<void>,
  options: TgzScanOptions = {},
): Promise<void> {
  // Loaded on use: zips and directories never need it, and it costs every CLI start ~30 ms.
  const { Parser } = await import('tar');
  return new Promise((resolvePromise, reject) => {
    let failed = false;
    let chain: Promise<void> = Promise.resolve();
    const source = createReadStream(path);
    const gunzip = createGunzip();
    const parser = new Parser({ strict: false });
    // Stream and parser errors mean a broken archive; the visitor's own errors (e.g. a full disk) pass through as they are.
    const fail = (err: unknown, fromVisitor = false): void => {
      if (failed) return;
      failed = true;
      source.destroy();
      gunzip.destroy();
      reject(
        err instanceof MarError || fromVisitor
          ? err
          : new MarError('ARCHIVE_CORRUPT', `${path} is not a readable .tar.gz (${(err as Error)?.message ?? err}); it may be truncated: rebuild or re-download it`, { cause: err }),
      );
    };
    const failVisit = (err: unknown): void => fail(err, true);
    const counter = new Transform({
      transform(chunk: Buffer, _enc, cb: TransformCallback) {
        try {
          options.onInflated?.(chunk.length);
        } catch (err) {
          cb(err as Error);
          return;
        }
        cb(null, chunk);
      },
    });
    parser.on('warn', (code: string, message: string | Error) => {
      if (code === 'TAR_ENTRY_INFO') return;
      fail(new Error(`${code}: ${message instanceof Error ? message.message : message}`));
    });
    parser.on('error', fail);
    parser.on('entry', (entry: ReadEntry) => {
      if (failed) {
        entry.resume();
        return;
      }
      const member: TarMember = { rawPath: entry.path, type: tarType(entry.type), size: entry.size ?? 0 };
      if (entry.mode !== undefined) member.mode = entry.mode;
      if (entry.mtime) member.mtime = entry.mtime;
      if (entry.linkpath) member.linkTarget = entry.linkpath;
      chain = chain.then(async () => {
        if (failed) {
          entry.resume();
          return;
        }
        await visit(member, entry);
      });
      chain.catch(failVisit);
    });
    parser.on('end', () => {
      chain.then(() => {
        if (!failed) resolvePromise();
      }, failVisit);
    });
    source.on('error', fail);
    gunzip.on('error', fail);
    counter.on('error', fail);
    source.pipe(gunzip).pipe(counter).pipe(parser as unknown as NodeJS.WritableStream);
  });
}

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
 * Passes data through while computing CRC-32 and counting bytes; at the end compares them with what the
 * archive recorded (zip: CRC and size; tar/dir: size). Errors are ARCHIVE_CORRUPT naming the entry.
 */
export class IntegrityCheck extends Transform {
  readonly #entry: ArchiveEntryInfo;
  readonly #archive: string;
  readonly #onChunk: ((chunk: Buffer) => void) | undefined;
  #crc = 0;
  #bytes = 0;

  constructor(archive: string, entry: ArchiveEntryInfo, onChunk?: (chunk: Buffer) => void) {
    super();
    this.#archive = archive;
    this.#entry = entry;
    this.#onChunk = onChunk;
  }

  get bytes(): number {
    return this.#bytes;
  }

  get crc(): number {
    return this.#crc;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#bytes += chunk.length;
    // Stop inflating as soon as an entry outgrows its recorded size: no trusting headers, no bombs.
    if (this.#bytes > this.#entry.size) {
      cb(this.#mismatch(`inflates to more than the recorded ${this.#entry.size} bytes`));
      return;
    }
    if (this.#entry.crc32 !== undefined) this.#crc = crc32(chunk, this.#crc);
    try {
      this.#onChunk?.(chunk);
    } catch (err) {
      cb(err as Error);
      return;
    }
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    if (this.#bytes !== this.#entry.size) {
      cb(this.#mismatch(`has ${this.#bytes} bytes of data but the archive records ${this.#entry.size}`));
      return;
    }
    if (this.#entry.crc32 !== undefined && this.#crc >>> 0 !== this.#entry.crc32 >>> 0) {
      cb(this.#mismatch(`CRC-32 is ${hex8(this.#crc)} but the archive records ${hex8(this.#entry.crc32)}`));
      return;
    }
    cb();
  }

  #mismatch(what: string): MarError {
    return new MarError('ARCHIVE_CORRUPT', `${this.#archive}: entry ${this.#entry.rawPath} ${what}; the archive is corrupt: rebuild or re-download it`, {
      details: { path: this.#entry.rawPath, kind: what.startsWith('CRC') ? 'crc' : 'size' },
    });
  }
}

export function hex8(n: number): string {
  return (n >>> 0).toString(16).padStart(8, '0');
}

async function walkDir(root: string): Promise<ArchiveEntryInfo[]> {
  const out: ArchiveEntryInfo[] = [];
  const visit = async (rel: string): Promise<void> => {
    const names = (await readdir(rel ? join(root, rel) : root)).sort();
    for (const name of names) {
      const relPath = rel ? `${rel}/${name}` : name;
      const abs = join(root, relPath);
      const st = await lstat(abs);
      const type: EntryType = st.isSymbolicLink() ? 'symlink' : st.isDirectory() ? 'directory' : st.isFile() ? 'file' : 'other';
      const info: ArchiveEntryInfo = {
        index: 0,
        path: type === 'directory' ? relPath + '/' : relPath,
        rawPath: type === 'directory' ? relPath + '/' : relPath,
        type,
        isDirectory: type === 'directory',
        isSymlink: type === 'symlink',
        size: type === 'file' ? st.size : 0,
        compressedSize: type === 'file' ? st.size : 0,
        method: 'file',
        mode: st.mode,
        mtime: st.mtime,
        nameValidUtf8: true,
      };
      if (type === 'symlink') info.linkTarget = await readlink(abs);
      out.push(info);
      if (type === 'directory') await visit(relPath);
    }
  };
  try {
    await visit('');
  } catch (err) {
    throw new MarError('INPUT_NOT_FOUND', `cannot read directory ${root}: ${describeFsError(err)}`, { cause: err });
  }
  out.forEach((e, i) => (e.index = i));
  return out;
}

export class ArchiveReader {
  readonly path: string;
  readonly kind: ArchiveKind;
  /** Size of the archive file in bytes (the sum of file sizes for a directory). */
  readonly archiveBytes: number;
  /** tgz only: the single root directory members live in, or null. */
  readonly tgzRoot: string | null;
  readonly #entries: ArchiveEntryInfo[];
  readonly #zip: yauzl.ZipFile | undefined;
  readonly #zipEntries: yauzl.Entry[];
  readonly #cache: Map<number, Buffer>;
  #closed = false;

  private constructor(init: {
    path: string;
    kind: ArchiveKind;
    archiveBytes: number;
    entries: ArchiveEntryInfo[];
    tgzRoot?: string | null;
    zip?: yauzl.ZipFile;
    zipEntries?: yauzl.Entry[];
    cache?: Map<number, Buffer>;
  }) {
    this.path = init.path;
    this.kind = init.kind;
    this.archiveBytes = init.archiveBytes;
    this.#entries = init.entries;
    this.tgzRoot = init.tgzRoot ?? null;
    this.#zip = init.zip;
    this.#zipEntries = init.zipEntries ?? [];
    this.#cache = init.cache ?? new Map();
  }

  /** Opens an archive; for a zip this reads only the central directory, for a tgz it scans the whole stream once. */
  static async open(path: string): Promise<ArchiveReader> {
    const kind = await detectArchiveKind(path);
    if (kind === 'dir') {
      const entries = await walkDir(path);
      const archiveBytes = entries.reduce((n, e) => n + e.size, 0);
      return new ArchiveReader({ path, kind, archiveBytes, entries });
    }
    const archiveBytes = (await stat(path)).size;
    if (kind === 'zip') {
      let zip: yauzl.ZipFile | undefined;
      try {
        zip = await openZip(path);
        const zipEntries = await readCentralDirectory(zip);
        const entries = zipEntries.map(zipEntryInfo);
        return new ArchiveReader({ path, kind, archiveBytes, entries, zip, zipEntries });
      } catch (err) {
        zip?.close();
        throw zipError(path, err);
      }
    }
    const members: TarMember[] = [];
    const cache = new Map<number, Buffer>();
    let cached = 0;
    await scanTgz(path, async (member, data) => {
      const index = members.length;
      members.push(member);
      if (member.type === 'file' && member.size <= TGZ_CACHE_ENTRY_BYTES && cached + member.size <= TGZ_CACHE_TOTAL_BYTES) {
        const buf = await readAll(data, TGZ_CACHE_ENTRY_BYTES, member.rawPath);
        cache.set(index, buf);
        cached += buf.length;
      } else {
        data.resume();
        await new Promise<void>((r) => (data.emittedEnd ? r() : data.once('end', () => r())));
      }
    });
    const tgzRoot = findTgzRoot(members.map((m) => m.rawPath));
    const entries = members.map((m, index) => tgzEntryInfo(m, index, tgzRoot));
    return new ArchiveReader({ path, kind, archiveBytes, entries, tgzRoot, cache });
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
    const hit = this.#cache.get(entry.index);
    if (hit) return hit;
    if (entry.size > maxBytes) {
      throw new MarError('ARCHIVE_LIMIT', `${this.path}: entry ${entry.rawPath} is ${entry.size} bytes, more than the ${maxBytes} this command reads into memory`);
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
    const raw = await this.#openRaw(entry);
    raw.on('error', (err) => check.destroy(this.#dataError(entry, err)));
    return raw.pipe(check);
  }

  async #openRaw(entry: ArchiveEntryInfo): Promise<Readable> {
    this.#assertOpen();
    if (this.kind === 'zip') {
      const ze = this.#zipEntries[entry.index]!;
      if (entry.encrypted) throw new MarError('ARCHIVE_UNSUPPORTED', `${this.path}: entry ${entry.rawPath} is encrypted; model archives must not be encrypted`);
      if (entry.method === 'other') {
        throw new MarError('ARCHIVE_UNSUPPORTED', `${this.path}: entry ${entry.rawPath} uses compression method ${entry.compressionMethod}; only stored (0) and deflated (8) are readable by the servers`);
      }
      return new Promise((resolvePromise, reject) => {
        this.#zip!.openReadStream(ze, (err, stream) => (err || !stream ? reject(this.#dataError(entry, err)) : resolvePromise(stream)));
      });
    }
    if (this.kind === 'dir') {
      const segments = checkEntryPath(entry.rawPath).segments;
      return createReadStream(join(this.path, ...segments));
    }
    const hit = this.#cache.get(entry.index);
    if (hit) {
      const pt = new PassThrough();
      pt.end(hit);
      return pt;
    }
    // Scan to the member; hand its data over through a PassThrough and stop reading once it has been delivered.
    const out = new PassThrough();
    let index = 0;
    scanTgz(this.path, async (_member, data) => {
      const i = index++;
      if (i === entry.index) {
        data.pipe(out);
        await new Promise<void>((r, j) => {
          out.once('end', r);
          out.once('close', r);
          out.once('error', j);
        });
        throw new StopScan();
      }
      data.resume();
      await new Promise<void>((r) => (data.emittedEnd ? r() : data.once('end', () => r())));
    }).then(
      () => out.destroy(new MarError('INPUT_NOT_FOUND', `${this.path}: entry ${entry.rawPath} vanished while reading`)),
      (err) => {
        if (!(err instanceof StopScan) && !(err instanceof MarError && err.cause instanceof StopScan)) out.destroy(err as Error);
      },
    );
    return out;
  }

  /**
   * Streams every entry in archive order (one pass for a tgz). Each file's stream is integrity-checked;
   * the visitor must consume it. Directories and links get a null stream.
   */
  async walk(visitor: EntryVisitor, onChunk?: (entry: ArchiveEntryInfo, chunk: Buffer) => void): Promise<void> {
    this.#assertOpen();
    if (this.kind !== 'tgz') {
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
    let index = 0;
    await scanTgz(this.path, async (_member, data) => {
      const entry = this.#entries[index++];
      if (!entry) throw new MarError('ARCHIVE_CORRUPT', `${this.path} changed while it was being read; try again`);
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

  /** Zip only: the entry's local header, which is what Java's ZipInputStream actually reads. */
  async readLocalHeader(entry: ArchiveEntryInfo): Promise<LocalHeaderInfo> {
    this.#assertOpen();
    if (this.kind !== 'zip') throw new MarError('ARCHIVE_UNSUPPORTED', 'local headers exist only in zip archives');
    const ze = this.#zipEntries[entry.index]!;
    return new Promise((resolvePromise, reject) => {
      this.#zip!.readLocalFileHeader(ze, {}, (err, h) => {
        if (err || !h) return reject(this.#dataError(entry, err));
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

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#zip?.close();
  }

  #assertOpen(): void {
    if (this.#closed) throw new MarError('INTERNAL', `${this.path}: reader already closed`);
  }

  #dataError(entry: ArchiveEntryInfo, err: unknown): MarError {
    if (err instanceof MarError) return err;
    const msg = (err as Error)?.message ?? String(err);
    return new MarError('ARCHIVE_CORRUPT', `${this.path}: entry ${entry.rawPath} cannot be read (${msg}); the archive is corrupt or truncated: rebuild or re-download it`, {
      cause: err,
      details: { path: entry.rawPath, kind: 'data' },
    });
  }
}

class StopScan extends Error {}

function tgzEntryInfo(m: TarMember, index: number, root: string | null): ArchiveEntryInfo {
  let path = stripDotSlash(m.rawPath);
  if (root !== null) path = path === root || path === root + '/' ? '' : path.slice(root.length + 1);
  if (m.type === 'directory' && path !== '' && !path.endsWith('/')) path += '/';
  const info: ArchiveEntryInfo = {
    index,
    path,
    rawPath: m.rawPath,
    type: m.type,
    isDirectory: m.type === 'directory',
    isSymlink: m.type === 'symlink',
    size: m.type === 'file' ? m.size : 0,
    compressedSize: m.type === 'file' ? m.size : 0,
    method: 'tar',
    nameValidUtf8: true,
  };
  if (m.mode !== undefined) info.mode = m.mode;
  if (m.mtime) info.mtime = m.mtime;
  if (m.linkTarget !== undefined) info.linkTarget = m.linkTarget;
  return info;
}

/** Opens, runs fn, and always closes. */
export async function withArchive<T>(path: string, fn: (reader: ArchiveReader) => Promise<T>): Promise<T> {
  const reader = await ArchiveReader.open(path);
  try {
    return await fn(reader);
  } finally {
    await reader.close();
  }
}
