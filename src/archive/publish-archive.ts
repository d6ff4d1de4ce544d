/**
 * Publishing an archive: writing the entries into a sink (zip, tgz or directory) beside the target, then
 * MAR-INF/FILES.sha256 and MAR-INF/MANIFEST.json, and moving the finished output into place atomically.
 * On any failure the temp output (and an export dir this run created) is removed; an existing target is kept.
 */

import { createHash } from 'node:crypto';
import { rmSync } from 'node:fs';
import { link, lstat, open, realpath, rename, rm, rmdir, unlink } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { describeFsError, MarError } from '../errors.js';
import { DIGESTS_PATH, MANIFEST_PATH } from '../manifest/manifest.js';
import type { ArchiveSink, EntryMeta, WrittenEntry } from './archive-sink.js';
import { formatDigests } from './digests.js';
import { DirWriter } from './dir-writer.js';
import type { ArchiveFormat } from './formats.js';
import type { CreateProgress, ProgressCallback } from './progress.js';
import { digestBuffer, SMALL_FILE_BYTES } from './read-source.js';
import { TarGzWriter } from './tar-writer.js';
import type { SourceEntry } from './walk.js';
import { ZipWriter } from './zip-writer.js';

/** How many small files are read (and compressed) ahead of the writer. */
const PREFETCH_WINDOW = 16;

/** Temp paths of runs in progress; removed synchronously if the process exits under us. */
const liveTemps = new Set<string>();
let exitHookInstalled = false;
function trackTemp(path: string): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const p of liveTemps) rmSync(p, { recursive: true, force: true });
    });
  }
  liveTemps.add(path);
}

/** lstat, or undefined when nothing is there. */
export async function pathExists(path: string): Promise<import('node:fs').Stats | undefined> {
  try {
    return await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new MarError('OUTPUT_FAILED', `cannot check ${path}: ${describeFsError(err)}`, { cause: err });
  }
}

async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20); // one reused buffer: no garbage per chunk
    for (let position = 0; ; ) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, position);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
      position += bytesRead;
    }
  } finally {
    await fh.close();
  }
  return hash.digest('hex');
}

/**
 * no-archive --force deletes the old output dir: refuse when it holds the model dir, an input or the cwd
 * (what the walk skipped there, such as .git or excluded files, would be lost).
 */
export async function refuseToReplaceInputs(target: string, modelPath: string | undefined, entries: readonly SourceEntry[]): Promise<void> {
  const realTarget = await realpath(target).catch(() => target);
  const inside = (p: string): boolean => p === realTarget || p.startsWith(`${realTarget}/`);
  const modelReal = modelPath === undefined ? undefined : await realpath(modelPath).catch(() => resolve(modelPath));
  const hit = [modelReal, process.cwd(), ...entries.map((e) => e.realPath)].find((p) => p !== undefined && inside(p));
  if (hit !== undefined) {
    throw new MarError(
      'USAGE',
      `--force would replace ${target}, ${hit === realTarget ? 'which is' : 'which holds'} ${hit} (an input or the current directory); choose another --export-path or --model-name`,
    );
  }
}

/** Moves the finished temp file into place: no-clobber (link) unless forced (rename replaces atomically). */
async function publishFile(tmp: string, target: string, force: boolean): Promise<void> {
  try {
    if (force) {
      await rename(tmp, target);
      return;
    }
    try {
      await link(tmp, target);
      await unlink(tmp);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') throw new MarError('OUTPUT_EXISTS', `${target} already exists; use -f/--force to overwrite it`);
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EXDEV' && code !== 'ENOSYS') throw err;
    }
    if (await pathExists(target)) throw new MarError('OUTPUT_EXISTS', `${target} already exists; use -f/--force to overwrite it`);
    await rename(tmp, target);
  } catch (err) {
    if (err instanceof MarError) throw err;
    throw new MarError('OUTPUT_FAILED', `cannot move the archive to ${target}: ${describeFsError(err)}`, { cause: err });
  }
}

/** Swaps the finished temp dir into place; with force the old dir is moved aside first, then removed entirely. */
async function publishDir(tmp: string, target: string, force: boolean, suffix: string): Promise<void> {
  const existing = await pathExists(target);
  if (existing && !force) throw new MarError('OUTPUT_EXISTS', `${target} already exists; use -f/--force to overwrite it`);
  let aside: string | undefined;
  try {
    if (existing) {
      aside = join(dirname(target), `.${basename(target)}.old-${suffix}`);
      await rename(target, aside);
    }
    await rename(tmp, target);
  } catch (err) {
    if (aside) await rename(aside, target).catch(() => undefined);
    throw new MarError('OUTPUT_FAILED', `cannot move the output to ${target}: ${describeFsError(err)}`, { cause: err });
  }
  if (aside) await rm(aside, { recursive: true, force: true });
}

/** Removes `dir` and its parents up to `top` (inclusive) while they are empty: what a failed run created. */
async function removeEmptyDirs(dir: string, top: string): Promise<void> {
  for (let d = resolve(dir); ; d = dirname(d)) {
    try {
      await rmdir(d);
    } catch {
      return; // not empty (someone else wrote there) or already gone: keep it and its parents
    }
    if (d === resolve(top) || d === dirname(d)) return;
  }
}

/** One archive to write and publish. */
export interface PublishJob {
  format: ArchiveFormat;
  /** The final path, and the temp path beside it that is written first. */
  target: string;
  tmp: string;
  /** The random suffix of tmp, reused for the aside name of a replaced directory. */
  suffix: string;
  force: boolean;
  /** tgz: the root directory every entry goes under. */
  modelName: string;
  entries: readonly SourceEntry[];
  manifestBytes: Buffer;
  /** Every entry's mtime (SOURCE_DATE_EPOCH); else each file's own, and `now` for the MAR-INF files. */
  fixedTime: Date | undefined;
  now: Date;
  /** The archive's own time (tgz header times). */
  createdOn: Date;
  /** The export directory and the first directory this run created for it (removed again on failure). */
  exportDir: string;
  createdDir: string | undefined;
  /** Hash the finished archive (a second read of the output). */
  archiveSha256: boolean;
  onProgress?: ProgressCallback | undefined;
  signal?: AbortSignal | undefined;
}

/** What was published. */
export interface Published {
  bytes: number;
  sha256: string;
  written: WrittenEntry[];
}

async function openSink(job: PublishJob): Promise<ArchiveSink<unknown>> {
  const { format, tmp, signal } = job;
  const mtimeSec = Math.floor(job.createdOn.getTime() / 1000);
  if (format === 'tgz') return (await TarGzWriter.create(tmp, { root: job.modelName, mtimeSec, signal })) as ArchiveSink<unknown>;
  if (format === 'no-archive') return (await DirWriter.create(tmp, { signal })) as ArchiveSink<unknown>;
  return (await ZipWriter.create(tmp, { policy: format === 'zip-store' ? 'store' : 'auto', signal })) as ArchiveSink<unknown>;
}

/**
 * Streams each file once (digest + CRC + write) into a temp output beside the target, adds the digests and the
 * manifest, and renames the result into place. On failure everything this run wrote is removed.
 */
export async function publishArchive(job: PublishJob): Promise<Published> {
  const { entries, manifestBytes, format, tmp, target, force, fixedTime, signal } = job;
  const progress: CreateProgress = {
    bytesDone: 0,
    bytesTotal: entries.reduce((s, e) => s + e.size, 0) + manifestBytes.length,
    entriesDone: 0,
    entriesTotal: entries.length + 2,
  };
  const onBytes = (n: number): void => {
    progress.bytesDone += n;
    job.onProgress?.(progress);
  };

  trackTemp(tmp);
  let sink: ArchiveSink<unknown> | undefined;
  try {
    signal?.throwIfAborted();
    sink = await openSink(job);
    const s = sink;

    const written: WrittenEntry[] = [];
    const prepared = new Map<number, Promise<unknown>>();
    const isSmall = (e: SourceEntry): boolean => e.size <= SMALL_FILE_BYTES;
    const schedule = (from: number): void => {
      for (let j = from; j < Math.min(entries.length, from + PREFETCH_WINDOW); j++) {
        if (prepared.has(j) || !isSmall(entries[j]!)) continue;
        const p = s.prepare(entries[j]!);
        p.catch(() => undefined); // awaited in order below; this only silences the early rejection
        prepared.set(j, p);
      }
    };
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      schedule(i);
      const meta: EntryMeta = { archivePath: e.archivePath, mtime: fixedTime ?? new Date(e.mtimeMs), mode: e.mode };
      if (isSmall(e)) {
        const p = prepared.get(i)!;
        prepared.delete(i);
        written.push(await s.addPrepared(meta, await p, onBytes));
      } else {
        written.push(await s.addStreamed(meta, e, onBytes));
      }
      progress.entriesDone++;
    }

    const metaTime = fixedTime ?? job.now;
    const digestLines = written.map((w) => ({ sha256: w.sha256, size: w.size, path: w.archivePath }));
    digestLines.push({ sha256: digestBuffer(manifestBytes).sha256, size: manifestBytes.length, path: MANIFEST_PATH });
    const digestBytes = formatDigests(digestLines);
    written.push(await s.addBuffer({ archivePath: DIGESTS_PATH, mtime: metaTime, mode: 0o644 }, digestBytes));
    progress.entriesDone++;
    written.push(await s.addBuffer({ archivePath: MANIFEST_PATH, mtime: metaTime, mode: 0o644 }, manifestBytes));
    progress.entriesDone++;
    onBytes(manifestBytes.length);

    const bytes = await s.finish();
    signal?.throwIfAborted();
    const sha256 =
      format === 'no-archive' ? createHash('sha256').update(digestBytes).digest('hex') : !job.archiveSha256 ? '' : await sha256OfFile(tmp);
    if (format === 'no-archive') await publishDir(tmp, target, force, job.suffix);
    else await publishFile(tmp, target, force);
    liveTemps.delete(tmp);
    return { bytes, sha256, written };
  } catch (err) {
    await sink?.abort().catch(() => undefined);
    await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    liveTemps.delete(tmp);
    if (job.createdDir !== undefined) await removeEmptyDirs(job.exportDir, job.createdDir);
    if (err instanceof MarError || (signal?.aborted && err === signal.reason)) throw err;
    // Safety net: an fs/stream error that no writer wrapped still becomes one actionable line.
    throw new MarError('OUTPUT_FAILED', `cannot write ${target}: ${describeFsError(err)}`, { cause: err });
  }
}
