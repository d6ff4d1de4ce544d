/**
 * Gzipped tar (.tar.gz) source: one streaming scan lists the members (keeping the small ones in memory, so the
 * manifest, handler and config need no second pass); opening any other member scans again up to it.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { PassThrough, type Readable, Transform, type TransformCallback } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { ReadEntry } from 'tar';
import { MarError } from '../../errors.js';
import { readAll } from '../integrity.js';
import { type ArchiveLimits, type LimitHint, LimitMeter } from '../limits.js';
import type { ArchiveEntryInfo, ArchiveSource, EntryType } from './source.js';

/** Small tar members are kept from the listing scan so manifest/handler/config reads need no second pass. */
const TGZ_CACHE_ENTRY_BYTES = 1 << 20;
const TGZ_CACHE_TOTAL_BYTES = 32 << 20;
/** Bytes per read of the .tar.gz and per inflated chunk. */
const TGZ_IO_BYTES = 1 << 20;

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
    /** The member the visitor is handling now, if any. */
    let current: ReadEntry | null = null;
    // Large reads and inflate steps: far fewer callbacks per byte (extraction runs near gunzip speed).
    const source = createReadStream(path, { highWaterMark: TGZ_IO_BYTES });
    const gunzip = createGunzip({ chunkSize: TGZ_IO_BYTES });
    const parser = new Parser({ strict: false });
    // Stream and parser errors mean a broken archive; the visitor's own errors (e.g. a full disk) pass through as they are.
    // The caller hears of a failure only once its visitor is done: the extractor removes what it wrote when this
    // rejects, and a visit still running (a directory being made) could otherwise write again after that. The member
    // being visited gets the error, so a visitor reading it stops rather than waits for data that will not come.
    const fail = (err: unknown, fromVisitor = false): void => {
      if (failed) return;
      failed = true;
      source.destroy();
      gunzip.destroy();
      const error =
        err instanceof MarError || fromVisitor
          ? err
          : new MarError(
              'ARCHIVE_CORRUPT',
              `${path} is not a readable .tar.gz (${(err as Error)?.message ?? err}); it may be truncated: rebuild or re-download it`,
              { cause: err },
            );
      // the parser gets no more data (nor end()), then, once the parser's own call that failed has returned, the
      // member it was filling is ended
      counter.unpipe(parser as unknown as NodeJS.WritableStream);
      const visiting = current;
      if (!fromVisitor && visiting !== null) {
        process.nextTick(() => {
          // a visitor not reading the data has no listener; this scan's rejection is what reports the error
          visiting.on('error', () => undefined);
          visiting.destroy(error as Error);
        });
      }
      const done = (): void => reject(error);
      chain.then(done, done);
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
        current = entry;
        try {
          await visit(member, entry);
        } finally {
          current = null;
        }
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
    source
      .pipe(gunzip)
      .pipe(counter)
      .pipe(parser as unknown as NodeJS.WritableStream);
  });
}

function tgzEntryInfo(m: TarMember, index: number, root: string | null): ArchiveEntryInfo {
  let path = stripDotSlash(m.rawPath);
  if (root !== null) path = path === root || path === `${root}/` ? '' : path.slice(root.length + 1);
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

/** Lets a member's data go by unread. */
async function skip(data: ReadEntry): Promise<void> {
  data.resume();
  // 'error': the scan failed and ended this member (scanTgz)
  if (data.emittedEnd) return;
  await new Promise<void>((r) => {
    data.once('end', () => r());
    data.once('error', () => r());
  });
}

class StopScan extends Error {}

class TgzSource implements ArchiveSource {
  readonly entries: ArchiveEntryInfo[];
  readonly tgzRoot: string | null;
  readonly #path: string;
  readonly #cache: Map<number, Buffer>;

  constructor(path: string, entries: ArchiveEntryInfo[], tgzRoot: string | null, cache: Map<number, Buffer>) {
    this.#path = path;
    this.entries = entries;
    this.tgzRoot = tgzRoot;
    this.#cache = cache;
  }

  cached(entry: ArchiveEntryInfo): Buffer | undefined {
    return this.#cache.get(entry.index);
  }

  async openRaw(entry: ArchiveEntryInfo): Promise<Readable> {
    const hit = this.#cache.get(entry.index);
    if (hit) {
      const pt = new PassThrough();
      pt.end(hit);
      return pt;
    }
    // Scan to the member; hand its data over through a PassThrough and stop reading once it has been delivered.
    const out = new PassThrough();
    let index = 0;
    scanTgz(this.#path, async (_member, data) => {
      const i = index++;
      if (i === entry.index) {
        data.pipe(out);
        await new Promise<void>((r, j) => {
          out.once('end', r);
          out.once('close', r);
          out.once('error', j);
          // the scan failed and ended this member (scanTgz): pipe() does not pass that on
          data.once('error', j);
        });
        throw new StopScan();
      }
      await skip(data);
    }).then(
      () => out.destroy(new MarError('INPUT_NOT_FOUND', `${this.#path}: entry ${entry.rawPath} vanished while reading`)),
      (err) => {
        if (!(err instanceof StopScan) && !(err instanceof MarError && err.cause instanceof StopScan)) out.destroy(err as Error);
      },
    );
    return out;
  }

  scan(visit: (entry: ArchiveEntryInfo, data: NodeJS.ReadableStream) => Promise<void>): Promise<void> {
    let index = 0;
    return scanTgz(this.#path, async (_member, data) => {
      const entry = this.entries[index++];
      if (!entry) throw new MarError('ARCHIVE_CORRUPT', `${this.#path} changed while it was being read; try again`);
      await visit(entry, data as unknown as NodeJS.ReadableStream);
    });
  }

  close(): void {}
}

/**
 * Lists a .tar.gz in one scan (keeping small members in memory); an unreadable one is ARCHIVE_CORRUPT. The scan
 * inflates everything, so it is held to the limits as it goes (a gzip bomb stops here, not after 64 GiB).
 */
export async function openTgzSource(path: string, limits: ArchiveLimits, hint: LimitHint): Promise<ArchiveSource> {
  const members: TarMember[] = [];
  const cache = new Map<number, Buffer>();
  let cached = 0;
  const meter = new LimitMeter(path, (await stat(path)).size, limits, hint);
  await scanTgz(
    path,
    async (member, data) => {
      meter.addEntry();
      const index = members.length;
      members.push(member);
      if (member.type === 'file' && member.size <= TGZ_CACHE_ENTRY_BYTES && cached + member.size <= TGZ_CACHE_TOTAL_BYTES) {
        const buf = await readAll(data, TGZ_CACHE_ENTRY_BYTES, member.rawPath);
        cache.set(index, buf);
        cached += buf.length;
      } else {
        await skip(data);
      }
    },
    { onInflated: (n) => meter.addBytes(n) },
  );
  const tgzRoot = findTgzRoot(members.map((m) => m.rawPath));
  const entries = members.map((m, index) => tgzEntryInfo(m, index, tgzRoot));
  return new TgzSource(path, entries, tgzRoot, cache);
}
