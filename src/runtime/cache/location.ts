/**
 * Where the model cache lives and how large it may grow: the platform's cache directory unless the caller (server
 * config `model_cache_dir`, `predict --cache-dir`) or $MAR_CACHE_DIR says otherwise; a size cap from the caller or
 * $MAR_CACHE_MAX_SIZE, else a quarter of the disk space the cache could use (free space plus what it holds).
 */
import { lstat, mkdir, statfs } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { describeFsError, MarError } from '../../errors.js';
import { parseByteSize } from '../../util/format.js';

export const CACHE_DIR_ENV = 'MAR_CACHE_DIR';
export const CACHE_MAX_SIZE_ENV = 'MAR_CACHE_MAX_SIZE';
/** The default cap: this fraction of (free disk + the cache's own size). */
export const DEFAULT_CACHE_FRACTION = 0.25;
const PROJECT = 'mar-tools';

/** A size cap: bytes, or a fraction of the disk space the cache could use. */
export type CacheCap = { bytes: number } | { fraction: number };

/** How a caller configures the cache (every field optional: the environment, then the defaults fill in). */
export interface CacheSettings {
  /** The cache root (else $MAR_CACHE_DIR, else the platform's cache directory). */
  dir?: string;
  /** The size cap (else $MAR_CACHE_MAX_SIZE, else DEFAULT_CACHE_FRACTION of the disk). */
  maxSize?: CacheCap;
}

/**
 * Parses a cap as users write it: a size ("20G", "512MiB", bytes; "0" keeps only entries in use) or a percentage
 * of the disk space the cache could use ("50%"). Null when it is neither.
 */
export function parseCacheCap(text: string): CacheCap | null {
  const pct = /^\s*(\d+(?:\.\d+)?)\s*%\s*$/.exec(text);
  if (pct) {
    const fraction = Number(pct[1]) / 100;
    return fraction > 0 && fraction <= 1 ? { fraction } : null;
  }
  const bytes = parseByteSize(text);
  return bytes === null ? null : { bytes };
}

/** The platform convention: $XDG_CACHE_HOME or ~/.cache on Linux, ~/Library/Caches on macOS, %LOCALAPPDATA% on Windows. */
export function conventionalCacheDir(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform): string {
  if (platform === 'win32') return join(env['LOCALAPPDATA'] || join(homedir(), 'AppData', 'Local'), PROJECT, 'cache', 'models');
  if (platform === 'darwin') return join(homedir(), 'Library', 'Caches', PROJECT, 'models');
  const xdg = env['XDG_CACHE_HOME'];
  // The XDG spec: a relative $XDG_CACHE_HOME is invalid and must be ignored.
  return join(xdg && isAbsolute(xdg) ? xdg : join(homedir(), '.cache'), PROJECT, 'models');
}

/** Where the cache goes when the conventional directory cannot be created (read-only home in a container). */
function fallbackCacheDir(): string {
  const uid = typeof process.getuid === 'function' ? process.getuid() : 'user';
  return join(tmpdir(), `${PROJECT}-${uid}`, 'models');
}

export interface CacheRoot {
  dir: string;
  /** Where the choice came from. */
  source: 'setting' | 'env' | 'default';
}

/**
 * A default root must be ours alone: a directory another user created or can write to could swap extracted handler
 * code under us. Checks the root and its parent (`mar-tools/`).
 */
async function assertPrivate(root: string): Promise<void> {
  if (typeof process.getuid !== 'function') return;
  for (const dir of [dirname(root), root]) {
    const st = await lstat(dir);
    if (!st.isDirectory() || st.uid !== process.getuid() || (st.mode & 0o022) !== 0) {
      throw new MarError(
        'OUTPUT_FAILED',
        `the model cache ${dir} is not private to this user (a symlink, owned by uid ${st.uid}, or group/world-writable); remove it or set ${CACHE_DIR_ENV}`,
      );
    }
  }
}

/** `fix` names what chose the directory, so the message says what to change. */
async function create(dir: string, fix: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new MarError('OUTPUT_FAILED', `cannot create the model cache ${dir}: ${describeFsError(err)}; ${fix}`, { cause: err });
  }
}

/** Resolves the cache root and creates it (a default one privately, falling back to the temp dir if home is read-only). */
export async function resolveCacheRoot(settings: CacheSettings = {}, env: NodeJS.ProcessEnv = process.env): Promise<CacheRoot> {
  if (settings.dir) {
    const dir = resolve(settings.dir);
    await create(dir, 'give a writable directory (--cache-dir, model_cache_dir)');
    return { dir, source: 'setting' };
  }
  if (env[CACHE_DIR_ENV]) {
    const dir = resolve(env[CACHE_DIR_ENV]);
    await create(dir, `set ${CACHE_DIR_ENV} to a writable directory`);
    return { dir, source: 'env' };
  }
  let dir = conventionalCacheDir(env);
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  } catch {
    dir = fallbackCacheDir();
    await create(dir, `set ${CACHE_DIR_ENV} to a writable directory`);
  }
  await assertPrivate(dir);
  return { dir, source: 'default' };
}

/** The cap in effect: the setting, else $MAR_CACHE_MAX_SIZE, else the default fraction. */
export function resolveCacheCap(settings: CacheSettings = {}, env: NodeJS.ProcessEnv = process.env): CacheCap {
  if (settings.maxSize) return settings.maxSize;
  const raw = env[CACHE_MAX_SIZE_ENV];
  if (raw) {
    const cap = parseCacheCap(raw);
    if (!cap) throw new MarError('USAGE', `${CACHE_MAX_SIZE_ENV}=${JSON.stringify(raw)} is not a size (20G, 512M) or a percentage (50%)`);
    return cap;
  }
  return { fraction: DEFAULT_CACHE_FRACTION };
}

/** The cap in bytes for a cache holding `usedBytes` now (a fraction is taken of free space plus usedBytes). */
export async function capBytes(root: string, cap: CacheCap, usedBytes: number): Promise<number> {
  if ('bytes' in cap) return cap.bytes;
  try {
    const fs = await statfs(root);
    return Math.floor(cap.fraction * (fs.bavail * fs.bsize + usedBytes));
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}
