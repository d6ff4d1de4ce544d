/**
 * The extraction cache: an archive is extracted once into a directory keyed by its sha256, shared by concurrent
 * opens in this process, and removed when the last user releases it.
 *
 * Layout: <root>/<sha256>/{model/, complete, owners/<pid>}. `complete` is written after extraction;
 * `owners/<pid>` marks a live user process, so a process never deletes an entry another live process uses,
 * and entries left by dead processes are swept on the first open.
 */

import { createHash } from 'node:crypto';
import { createReadStream, readdirSync, rmSync } from 'node:fs';
import { lstat, mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { type ArchiveLimits, DEFAULT_ARCHIVE_LIMITS, type LimitHint } from '../archive/limits.js';
import { describeFsError, MarError } from '../errors.js';

/** An extracted archive in use: its model directory, and the way to give it up. */
export interface ExtractionLease {
  dir: string;
  /** Gives up this use; the directory is deleted when no open in this process (or a live other) uses it. */
  release: () => Promise<void>;
}

/** The cache root: $MAR_CACHE_DIR, else <tmpdir>/mar-tools-<uid>/models. */
export function defaultCacheDir(): string {
  const env = process.env['MAR_CACHE_DIR'];
  if (env) return resolve(env);
  const uid = typeof process.getuid === 'function' ? process.getuid() : 'user';
  return join(tmpdir(), `mar-tools-${uid}`, 'models');
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

interface CacheEntry {
  refs: number;
  ready: Promise<string>;
}

const entries = new Map<string, CacheEntry>();
/** Deletions in progress, so a new open of the same archive waits instead of extracting into a dying dir. */
const removals = new Map<string, Promise<void>>();
const sweptRoots = new Set<string>();

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  try {
    for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  } catch (err) {
    throw new MarError('INPUT_INVALID', `cannot read ${path}: ${describeFsError(err)}`, { cause: err });
  }
  return hash.digest('hex');
}

function isAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Live owner pids of a cache entry, deleting the markers of dead ones. */
async function liveOwners(entryDir: string): Promise<number[]> {
  const ownersDir = join(entryDir, 'owners');
  let names: string[];
  try {
    names = await readdir(ownersDir);
  } catch {
    return [];
  }
  const live: number[] = [];
  for (const n of names) {
    const pid = Number(n);
    if (Number.isInteger(pid) && pid > 0 && isAlive(pid)) live.push(pid);
    else await rm(join(ownersDir, n), { force: true });
  }
  return live;
}

let exitHookInstalled = false;

/** On exit without release() (process.exit, a fatal error), clean up what only we used, synchronously. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const entryDir of entries.keys()) {
      try {
        rmSync(join(entryDir, 'owners', String(process.pid)), { force: true });
        const others = readdirSync(join(entryDir, 'owners')).filter((n) => Number(n) !== process.pid && isAlive(Number(n)));
        if (others.length === 0) rmSync(entryDir, { recursive: true, force: true });
      } catch {
        /* best effort: a later sweep removes it */
      }
    }
  });
}

/** Removes entries no live process owns (left behind by crashed or killed processes). Once per root. */
async function sweepStale(root: string): Promise<void> {
  if (sweptRoots.has(root)) return;
  sweptRoots.add(root);
  let names: string[];
  try {
    names = await readdir(root);
  } catch {
    return;
  }
  for (const n of names) {
    if (entries.has(join(root, n))) continue;
    const entryDir = join(root, n);
    if ((await liveOwners(entryDir)).length === 0) await rm(entryDir, { recursive: true, force: true }).catch(() => {});
  }
}

async function extractInto(archive: string, entryDir: string, limits: ArchiveLimits, hint: LimitHint): Promise<string> {
  const modelDir = join(entryDir, 'model');
  const marker = join(entryDir, 'complete');
  await mkdir(join(entryDir, 'owners'), { recursive: true, mode: 0o700 });
  await writeFile(join(entryDir, 'owners', String(process.pid)), '');
  if ((await exists(marker)) && (await exists(modelDir))) return modelDir;
  // No marker: a previous extraction died half-way (or is running in another process; extraction is
  // atomic, so at worst both write the same bytes and one rename wins).
  await rm(modelDir, { recursive: true, force: true });
  const { detectArchiveKind } = await import('../archive/read.js');
  const { extractArchive } = await import('../archive/extract.js');
  const kind = await detectArchiveKind(archive);
  if (kind === 'dir') throw new MarError('INPUT_INVALID', `${archive} is a directory`);
  try {
    // The loader's limits (archive/limits.ts): their ratio lets zero-filled tensors (~1000:1) through.
    await extractArchive(archive, modelDir, { stripTgzRoot: true, limits, limitHint: hint });
  } catch (err) {
    // Lost a race with another process extracting the same archive: its result is as good as ours.
    if (!((await exists(marker)) && (await exists(modelDir)))) throw err;
  }
  await writeFile(marker, `${new Date().toISOString()}\n`);
  return modelDir;
}

/**
 * Creates the cache root. The default one lives in the shared temp dir, so it must be ours alone: a directory
 * another user created (or can write to) could swap extracted handler code under us.
 */
async function ensureCacheRoot(root: string, isDefault: boolean): Promise<void> {
  try {
    await mkdir(root, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new MarError('OUTPUT_FAILED', `cannot create the model cache ${root}: ${describeFsError(err)}; set MAR_CACHE_DIR`, {
      cause: err,
    });
  }
  if (!isDefault || typeof process.getuid !== 'function') return;
  for (const dir of [dirname(root), root]) {
    const st = await lstat(dir);
    if (!st.isDirectory() || st.uid !== process.getuid() || (st.mode & 0o022) !== 0) {
      throw new MarError(
        'OUTPUT_FAILED',
        `the model cache ${dir} is not private to this user (a symlink, owned by uid ${st.uid}, or group/world-writable); remove it or set MAR_CACHE_DIR`,
      );
    }
  }
}

/**
 * Extracts `archive` into the cache (or joins an extraction of the same bytes in progress or done) and leases
 * its model directory. `cacheRoot` defaults to defaultCacheDir(), which must be private to this user.
 */
export async function acquireExtraction(
  archive: string,
  cacheRoot: string | undefined,
  limits: ArchiveLimits = DEFAULT_ARCHIVE_LIMITS,
  hint: LimitHint = 'extract',
): Promise<ExtractionLease> {
  const root = resolve(cacheRoot ?? defaultCacheDir());
  await ensureCacheRoot(root, cacheRoot === undefined && !process.env['MAR_CACHE_DIR']);
  await sweepStale(root);
  installExitHook();
  const entryDir = join(root, await sha256File(archive));
  await removals.get(entryDir);
  let entry = entries.get(entryDir);
  if (!entry) {
    entry = { refs: 0, ready: extractInto(archive, entryDir, limits, hint) };
    entries.set(entryDir, entry);
  }
  entry.refs++;
  const current = entry;
  const release = async (): Promise<void> => {
    if (--current.refs > 0) return;
    if (entries.get(entryDir) === current) entries.delete(entryDir);
    const removal = (async () => {
      await rm(join(entryDir, 'owners', String(process.pid)), { force: true });
      // Another live process still uses it: leave it; the last one out (or a later sweep) removes it.
      if ((await liveOwners(entryDir)).length === 0) await rm(entryDir, { recursive: true, force: true });
    })();
    removals.set(entryDir, removal);
    try {
      await removal;
    } finally {
      if (removals.get(entryDir) === removal) removals.delete(entryDir);
    }
  };
  try {
    return { dir: await current.ready, release };
  } catch (err) {
    await release();
    throw err;
  }
}
