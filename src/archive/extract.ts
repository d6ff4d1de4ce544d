/**
 * Safe, atomic extraction of a .mar / .tar.gz / model directory: every entry name is checked before anything
 * is written below a temp dir beside the target, links are refused, actual inflated bytes are counted against
 * the limits, CRCs are checked, and only a complete result is renamed into place.
 */
import { createWriteStream } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, realpath, rename, rm, rmdir, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describeFsError, MarError } from '../errors.js';
import type { RangeCopier } from './kernel-copy.js';
import {
  type ArchiveLimits,
  checkDeclaredSize,
  DEFAULT_ARCHIVE_LIMITS,
  EXTRACT_COMMAND_RATIO,
  type LimitHint,
  LimitMeter,
} from './limits.js';
import { type ArchiveEntryInfo, ArchiveReader, detectArchiveKind, type EntryType, findTgzRoot, scanTgz } from './read.js';
import { checkEntryPath, describeUnsafe, resolveInside } from './safe-path.js';
import { writeZipFiles, type ZipFileTarget } from './zip-extract.js';

/** The limits extraction applies (see limits.ts); the ratio's default is the extract command's stricter one. */
export type ExtractLimits = Pick<ArchiveLimits, 'maxTotalBytes' | 'maxEntries' | 'maxRatio'>;

export const DEFAULT_EXTRACT_LIMITS: Readonly<ExtractLimits> = Object.freeze({
  maxTotalBytes: DEFAULT_ARCHIVE_LIMITS.maxTotalBytes,
  maxEntries: DEFAULT_ARCHIVE_LIMITS.maxEntries,
  maxRatio: EXTRACT_COMMAND_RATIO,
});

export interface ExtractOptions {
  limits?: Partial<ExtractLimits>;
  /** How a limit error says to raise the limit: the extract command's flags (default) or the server's config keys. */
  limitHint?: LimitHint;
  /** Replace an existing non-empty target directory (atomically, after extraction succeeded). */
  force?: boolean;
  /** tgz only: drop the single top-level directory (`<model-name>/`) as TorchServe does. Default true. */
  stripTgzRoot?: boolean;
  /** zip only: copies large stored entries inside the kernel (kernel-copy.ts); the caller closes it. */
  copier?: RangeCopier | null;
}

export interface ExtractResult {
  dir: string;
  /** Files written. */
  entryCount: number;
  /** Bytes written. */
  bytes: number;
}

function unsafe(archive: string, rawPath: string, why: string): MarError {
  return new MarError('ARCHIVE_UNSAFE', `${archive}: entry ${JSON.stringify(rawPath)} ${why}; refusing to extract it`, {
    details: { path: rawPath },
  });
}

/** The checks every entry must pass before anything is written for it. Returns its path segments. */
function admitEntry(archive: string, e: { rawPath: string; type: EntryType; linkTarget?: string; nameValidUtf8?: boolean }): string[] {
  if (e.nameValidUtf8 === false) {
    throw new MarError(
      'ARCHIVE_UNSUPPORTED',
      `${archive}: entry name ${JSON.stringify(e.rawPath)} is not valid UTF-8, so MMS and TorchServe cannot load the archive; rebuild it with UTF-8 names`,
    );
  }
  const check = checkEntryPath(e.rawPath);
  if (check.unsafe) throw unsafe(archive, e.rawPath, `${describeUnsafe(check.unsafe)} and would escape the target directory`);
  if (e.type === 'symlink' || e.type === 'hardlink') {
    const to = e.linkTarget ? ` to ${JSON.stringify(e.linkTarget)}` : '';
    throw unsafe(
      archive,
      e.rawPath,
      `is a ${e.type === 'symlink' ? 'symbolic' : 'hard'} link${to}, and links can point outside the target`,
    );
  }
  if (e.type === 'other') throw unsafe(archive, e.rawPath, 'is a device, FIFO or other special file');
  return check.segments;
}

/** Refuses duplicate names and a name used both as a file and as a directory: the result would be ambiguous. */
class LayoutGuard {
  readonly #files = new Set<string>();
  readonly #dirs = new Set<string>();
  readonly #archive: string;

  constructor(archive: string) {
    this.#archive = archive;
  }

  add(rawPath: string, segments: readonly string[], isDirectory: boolean): void {
    const key = segments.join('/');
    if (key === '') return;
    for (let i = 1; i < segments.length + (isDirectory ? 1 : 0); i++) {
      const parent = segments.slice(0, i).join('/');
      if (this.#files.has(parent))
        throw unsafe(this.#archive, rawPath, `needs ${JSON.stringify(parent)} to be a directory, but it is also a file`);
      this.#dirs.add(parent);
    }
    if (isDirectory) return;
    if (this.#files.has(key)) {
      throw unsafe(
        this.#archive,
        rawPath,
        'appears more than once (the servers keep the last copy, other tools the first), so its content is ambiguous',
      );
    }
    if (this.#dirs.has(key)) throw unsafe(this.#archive, rawPath, 'is both a file and a directory');
    this.#files.add(key);
  }
}

function fileMode(mode: number | undefined): number {
  // Keep only "executable or not": no setuid bits, no world-writable files from strangers.
  return mode !== undefined && (mode & 0o111) !== 0 ? 0o755 : 0o644;
}

async function writeEntry(
  root: string,
  segments: readonly string[],
  rawPath: string,
  archive: string,
  data: Readable,
  mode: number | undefined,
): Promise<void> {
  // The data may fail (CRC, size) while we create directories; keep the error for pipeline, not for 'uncaught'.
  const swallow = (): void => undefined;
  data.on('error', swallow);
  const target = resolveInside(root, segments);
  if (!target) {
    data.destroy();
    throw unsafe(archive, rawPath, 'does not name a file inside the target directory');
  }
  try {
    await mkdir(dirname(target), { recursive: true });
  } catch (err) {
    data.destroy();
    throw err;
  }
  // 'wx': never write through something that already exists.
  await pipeline(data, createWriteStream(target, { flags: 'wx', mode: fileMode(mode) }));
}

/** --force removes the old dest: refuse when that would delete the archive being read or the current directory. */
async function refuseToReplaceAncestor(dest: string, archivePath: string): Promise<void> {
  const realDest = await realpath(dest);
  const contains = (p: string): boolean => p === realDest || p.startsWith(realDest.endsWith(sep) ? realDest : realDest + sep);
  if (contains(await realpath(archivePath))) {
    throw new MarError('USAGE', `${archivePath} is inside ${dest}, which --force would delete; extract to another -o`);
  }
  if (contains(process.cwd())) {
    throw new MarError('USAGE', `${dest} contains the current directory, which --force would delete; extract to another -o`);
  }
}

async function isEmptyDir(path: string): Promise<boolean> {
  return (await readdir(path)).length === 0;
}

function outputError(dest: string, err: unknown): MarError {
  if (err instanceof MarError) return err;
  return new MarError('OUTPUT_FAILED', `cannot write ${dest}: ${describeFsError(err)}`, { cause: err });
}

/**
 * Extracts an archive (zip, tgz or directory, detected by content) into destDir, atomically: the result
 * appears complete or not at all. destDir must not exist or be empty, unless `force` (then it is replaced).
 */
export async function extractArchive(archivePath: string, destDir: string, options: ExtractOptions = {}): Promise<ExtractResult> {
  const limits: ExtractLimits = { ...DEFAULT_EXTRACT_LIMITS, ...stripUndefined(options.limits ?? {}) };
  const dest = resolve(destDir);
  const kind = await detectArchiveKind(archivePath);
  if (kind === 'dir') {
    const src = resolve(archivePath);
    if (dest === src || dest.startsWith(src + sep)) {
      throw new MarError('USAGE', `the output directory ${dest} is inside the input directory ${src}; choose another -o`);
    }
  }

  let destExists = false;
  try {
    const st = await stat(dest);
    destExists = true;
    // --force replaces a directory, never a file the user may still need.
    if (!st.isDirectory()) throw new MarError('OUTPUT_EXISTS', `${dest} already exists and is not a directory; choose another -o`);
    if (!options.force && !(await isEmptyDir(dest))) {
      throw new MarError('OUTPUT_EXISTS', `${dest} already exists and is not an empty directory; pass --force to replace it`);
    }
    if (options.force) await refuseToReplaceAncestor(dest, archivePath);
  } catch (err) {
    if (err instanceof MarError) throw err;
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw outputError(dest, err);
  }

  const parent = dirname(dest);
  let tmp: string;
  // The first directory we had to create for the parent, removed again if extraction fails.
  let createdParent: string | undefined;
  try {
    createdParent = await mkdir(parent, { recursive: true });
    tmp = await mkdtemp(join(parent, `.${basename(dest)}.extract-`));
  } catch (err) {
    if (createdParent) await rm(createdParent, { recursive: true, force: true }).catch(() => undefined);
    throw outputError(dest, err);
  }

  try {
    // A directory is not compressed: an infinite "archive size" keeps the ratio check out of the way.
    const archiveBytes = kind === 'dir' ? Number.POSITIVE_INFINITY : (await stat(archivePath)).size;
    const hint = options.limitHint ?? 'flags';
    const meter = new LimitMeter(archivePath, archiveBytes, limits, hint);
    let files = 0;
    let written = 0;
    let resultDir = tmp;
    if (kind === 'tgz') {
      const rawPaths: string[] = [];
      const guard = new LayoutGuard(archivePath);
      await scanTgz(
        archivePath,
        async (member, data) => {
          meter.addEntry();
          rawPaths.push(member.rawPath);
          const segments = admitEntry(archivePath, member);
          guard.add(member.rawPath, segments, member.type === 'directory');
          if (member.type === 'directory') {
            data.resume();
            const target = resolveInside(tmp, segments);
            if (target) await mkdir(target, { recursive: true });
            return;
          }
          await writeEntry(tmp, segments, member.rawPath, archivePath, data as unknown as Readable, member.mode);
          files++;
          written += member.size;
        },
        { onInflated: (n) => meter.addBytes(n) },
      );
      const root = options.stripTgzRoot === false ? null : findTgzRoot(rawPaths);
      if (root !== null) resultDir = join(tmp, root);
    } else {
      const reader = await ArchiveReader.open(archivePath, { maxEntries: limits.maxEntries }, hint);
      try {
        const entries = reader.entries();
        meter.addEntry(entries.length);
        checkDeclaredSize(
          archivePath,
          entries.reduce((n, e) => n + e.size, 0),
          limits,
          hint,
        );
        // Vet every name before writing anything.
        const guard = new LayoutGuard(archivePath);
        const plan = new Map<number, string[]>();
        for (const e of entries) {
          const segments = admitEntry(archivePath, e);
          guard.add(e.rawPath, segments, e.isDirectory);
          plan.set(e.index, segments);
        }
        if (reader.hasRawRanges) {
          // zip: large positional writes, several entries (and chunks of one) at once (zip-extract.ts)
          const targets: ZipFileTarget[] = [];
          for (const e of entries) {
            const target = resolveInside(tmp, plan.get(e.index)!);
            if (e.isDirectory) {
              if (target) await mkdir(target, { recursive: true });
            } else if (!target) {
              throw unsafe(archivePath, e.rawPath, 'does not name a file inside the target directory');
            } else targets.push({ entry: e, target, mode: fileMode(e.mode) });
          }
          const r = await writeZipFiles(reader, archivePath, targets, {
            onBytes: (n) => meter.addBytes(n),
            copier: options.copier ?? null,
          });
          files = r.files;
          written = r.bytes;
        } else
          await reader.walk(
            async (e: ArchiveEntryInfo, stream) => {
              const segments = plan.get(e.index)!;
              if (e.isDirectory || !stream) {
                const target = resolveInside(tmp, segments);
                if (target) await mkdir(target, { recursive: true });
                return;
              }
              await writeEntry(tmp, segments, e.rawPath, archivePath, stream, e.mode);
              files++;
              written += e.size;
            },
            (_e, chunk) => meter.addBytes(chunk.length),
          );
      } finally {
        await reader.close();
      }
    }

    try {
      // mkdtemp makes the dir private (0700); the result should look like any directory the user creates.
      await chmod(resultDir, 0o777 & ~process.umask() & 0o755);
      if (destExists) {
        if (options.force) {
          const old = `${tmp}.old`;
          await rename(dest, old);
          try {
            await rename(resultDir, dest);
          } catch (err) {
            await rename(old, dest).catch(() => undefined);
            throw err;
          }
          await rm(old, { recursive: true, force: true });
        } else {
          await rmdir(dest);
          await rename(resultDir, dest);
        }
      } else {
        await rename(resultDir, dest);
      }
    } catch (err) {
      throw outputError(dest, err);
    }
    if (resultDir !== tmp) await rm(tmp, { recursive: true, force: true });
    return { dir: dest, entryCount: files, bytes: written };
  } catch (err) {
    await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    if (createdParent) await rm(createdParent, { recursive: true, force: true }).catch(() => undefined);
    if (err instanceof MarError) throw err;
    throw outputError(dest, err);
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
