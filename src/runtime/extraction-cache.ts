/**
 * The persistent extraction cache shared by `predict`, the server and every process of this user: an archive is
 * extracted once and reused until it changes or is evicted.
 *
 * - Key: a fingerprint that reads no entry data (archive/fingerprint.ts): size, mtime, inode and the zip central
 *   directory (every entry's CRC-32), or a tgz's first and last 64 KiB. A changed archive is a new key.
 * - Warm hit: the entry's records match the fingerprint and every extracted file is there with its size
 *   (entry-store.ts verifyEntry). Nothing is hashed: a file changed in the cache keeping its size is not noticed.
 *   The trust model: the cache is as trusted as the model store; it lives in a directory private to the user
 *   (location.ts), and whoever can write there could as well replace the archives.
 * - Cold: under the key's lock (lock.ts; other processes wait), extracted below .tmp with every CRC checked and
 *   every limit applied (archive/extract.ts), then published by one rename (entry-store.ts publishEntry), then
 *   least recently used entries are evicted past the cap (eviction.ts). An entry in use is never evicted.
 */
import { resolve } from 'node:path';
import { type ArchiveFingerprint, fingerprintArchive } from '../archive/fingerprint.js';
import { type ArchiveLimits, DEFAULT_ARCHIVE_LIMITS, type LimitHint } from '../archive/limits.js';
import {
  addUser,
  deleteTrashed,
  emptyTrash,
  entryPaths,
  makeTempEntry,
  publishEntry,
  readRecord,
  removeStaleTemps,
  removeUser,
  touchEntry,
  trashEntry,
  verifyEntry,
} from './cache/entry-store.js';
import { type CacheEntryInfo, clearCache, enforceCap, listCache, removeEntry } from './cache/eviction.js';
import { type CacheCap, type CacheRoot, type CacheSettings, capBytes, resolveCacheCap, resolveCacheRoot } from './cache/location.js';
import { acquireLock } from './cache/lock.js';
import { extractionCopier } from './extraction-copier.js';

export type { CacheEntryInfo } from './cache/eviction.js';
export type { CacheCap, CacheSettings } from './cache/location.js';
export { parseCacheCap } from './cache/location.js';

/** An extracted archive in use: its model directory, and the way to give it up. */
export interface ExtractionLease {
  dir: string;
  /** 'hit': reused; 'extracted': extracted by this call (possibly after waiting for another process that failed). */
  outcome: 'hit' | 'extracted';
  /** Gives up this use; the entry stays in the cache (it is only evicted once no process uses it). */
  release: () => Promise<void>;
  /**
   * Gives up this use of an archive the caller refused (a bad manifest, a missing handler): an entry this call
   * extracted is removed again unless someone else uses it, so a refused archive leaves no cache entry behind.
   */
  discard: () => Promise<void>;
}

interface Active {
  refs: number;
  ready: Promise<{ dir: string; outcome: ExtractionLease['outcome'] }>;
}

/** Opens in this process, by entry directory: concurrent opens of one archive share one extraction and one marker. */
const active = new Map<string, Active>();
/** Marker removals of entries this process just stopped using: a new open of the same entry waits for them. */
const removals = new Map<string, Promise<void>>();
const roots = new Map<string, Promise<CacheRoot>>();

function cacheRoot(settings: CacheSettings): Promise<CacheRoot> {
  const id = `${settings.dir ?? ''}\0${process.env['MAR_CACHE_DIR'] ?? ''}\0${process.env['XDG_CACHE_HOME'] ?? ''}`;
  let r = roots.get(id);
  if (!r) {
    r = resolveCacheRoot(settings).then((root) => {
      // deletions a killed process left unfinished; in the background, nothing waits for it
      void emptyTrash(root.dir).catch(() => undefined);
      return root;
    });
    roots.set(id, r);
    r.catch(() => roots.delete(id));
  }
  return r;
}

/** The warm path: adds this process as a user, then checks the entry; false (and no marker) when it is not usable. */
async function tryHit(root: string, fp: ArchiveFingerprint): Promise<boolean> {
  const paths = entryPaths(root, fp.key);
  if (!(await addUser(paths))) return false;
  if ((await verifyEntry(paths, fp)) !== null) {
    await removeUser(paths);
    return false;
  }
  await touchEntry(paths);
  return true;
}

async function extractLocked(
  archive: string,
  root: string,
  fp: ArchiveFingerprint,
  cap: CacheCap,
  hooks: AcquireHooks,
): Promise<ExtractionLease['outcome']> {
  const paths = entryPaths(root, fp.key);
  const lock = await acquireLock(paths.lock, hooks.onWait && ((holder) => hooks.onWait?.(holder?.pid ?? null)));
  try {
    // another process may have published it while we waited
    if (await tryHit(root, fp)) return 'hit';
    await removeStaleTemps(root, fp.key);
    // an entry that failed the warm check (a file changed or went missing): replaced, even if others still use it
    const old = await trashEntry(root, paths.dir);
    if (old !== null) void deleteTrashed(old);
    const tmp = await makeTempEntry(root, fp.key);
    extracting++;
    try {
      // The loader's limits (archive/limits.ts): their ratio lets zero-filled tensors (~1000:1) through.
      // loaded on a miss only: a warm start never needs the extractor
      const { extractArchive } = await import('../archive/extract.js');
      const copier = extractionCopier();
      try {
        await extractArchive(archive, resolve(tmp, 'model'), {
          stripTgzRoot: true,
          limits: hooks.limits ?? DEFAULT_ARCHIVE_LIMITS,
          limitHint: hooks.limitHint ?? 'extract',
          copier,
        });
      } finally {
        copier?.close();
      }
      await publishEntry(root, tmp, { key: fp.key, archive, fingerprint: fp, created: new Date().toISOString() });
    } catch (err) {
      await deleteTrashed(tmp);
      extracting--;
      // the caps that waited for this extraction: in the background, the error is what this call reports
      void enforceDueCaps(null);
      throw err;
    }
    extracting--;
  } finally {
    await lock.release();
  }
  capsDue.set(root, cap);
  await enforceDueCaps(fp.key);
  return 'extracted';
}

/** Extractions running in this process, and the caches whose cap waits for them to finish. */
let extracting = 0;
const capsDue = new Map<string, CacheCap>();

/**
 * Past the cap, least recently used entries go (never `keep`, the entry just extracted, never one in use: the others
 * this process extracted have its marker). Best effort. While other extractions run in this process (a server loading
 * its startup models), the last of them does it for all: eviction's listing and removals would otherwise wait behind
 * their large reads and writes in libuv's thread pool, and delay the start of this model's workers.
 */
async function enforceDueCaps(keep: string | null): Promise<void> {
  if (extracting > 0) return;
  for (const [root, cap] of [...capsDue]) {
    capsDue.delete(root);
    await enforceCap(root, cap, new Set(keep === null ? [] : [keep])).catch(() => undefined);
  }
}

export interface AcquireHooks {
  /** Called when another process is extracting the same archive and this call waits for it (with its pid). */
  onWait?: (holderPid: number | null) => void;
  /** The archive limits to extract under (archive/limits.ts); default DEFAULT_ARCHIVE_LIMITS. */
  limits?: ArchiveLimits;
  /** How a limit error says to raise the limit (default 'extract': unpack it first). */
  limitHint?: LimitHint;
}

/**
 * Leases the extraction of `archive` (a .mar / .zip / .tar.gz file) from the cache, extracting it first when it is
 * not there (or no longer matches). See the module comment for the key, the checks and the locking.
 */
export async function acquireExtraction(archive: string, settings: CacheSettings = {}, hooks: AcquireHooks = {}): Promise<ExtractionLease> {
  const abs = resolve(archive);
  const cap = resolveCacheCap(settings); // a bad $MAR_CACHE_MAX_SIZE fails now, not silently at eviction time
  const root = (await cacheRoot(settings)).dir;
  const fp = await fingerprintArchive(abs);
  const paths = entryPaths(root, fp.key);
  await removals.get(paths.dir);
  let entry = active.get(paths.dir);
  if (!entry) {
    const ready = (async () => {
      if (await tryHit(root, fp)) return { dir: paths.model, outcome: 'hit' as const };
      return { dir: paths.model, outcome: await extractLocked(abs, root, fp, cap, hooks) };
    })();
    entry = { refs: 0, ready };
    active.set(paths.dir, entry);
  }
  entry.refs++;
  const current = entry;
  let released = false;
  const release = async (): Promise<void> => {
    if (released) return;
    released = true;
    if (--current.refs > 0) return;
    if (active.get(paths.dir) === current) active.delete(paths.dir);
    const removal = removeUser(paths);
    removals.set(paths.dir, removal);
    await removal;
    if (removals.get(paths.dir) === removal) removals.delete(paths.dir);
  };
  try {
    const { dir, outcome } = await current.ready;
    const discard = async (): Promise<void> => {
      await release();
      // The caller is reporting why the open failed; that error is the one to surface. An entry
      // that could not be removed stays unused and is evicted by the size cap like any other.
      if (outcome === 'extracted') await removeEntry(root, fp.key).catch(() => undefined);
    };
    return { dir, outcome, release, discard };
  } catch (err) {
    if (active.get(paths.dir) === current) active.delete(paths.dir);
    released = true;
    current.refs--;
    throw err;
  }
}

/**
 * Where the archive's extraction already is, without leasing it (an early look: worker-prespawn.ts reads its
 * manifest there); null when the cache has no complete entry for it. acquireExtraction still decides.
 */
export async function cachedModelDir(archive: string, settings: CacheSettings = {}): Promise<string | null> {
  const root = (await cacheRoot(settings)).dir;
  const paths = entryPaths(root, (await fingerprintArchive(resolve(archive))).key);
  return (await readRecord(paths)) === null ? null : paths.model;
}

/** What `model-server cache list` shows. */
export interface CacheListing {
  root: string;
  cap: CacheCap;
  /** The cap in bytes now (a fraction is taken of the free disk space plus totalBytes). */
  capBytes: number;
  totalBytes: number;
  /** Most recently used first. */
  entries: CacheEntryInfo[];
}

/** Lists the cache's entries with their sizes, last use and users. */
export async function listExtractionCache(settings: CacheSettings = {}): Promise<CacheListing> {
  const root = (await cacheRoot(settings)).dir;
  const entries = await listCache(root);
  const totalBytes = entries.reduce((n, e) => n + e.bytes, 0);
  const cap = resolveCacheCap(settings);
  return { root, cap, capBytes: await capBytes(root, cap, totalBytes), totalBytes, entries };
}

/** Removes every entry no live process uses (and leftovers of killed extractions); says what went and what stayed. */
export async function clearExtractionCache(
  settings: CacheSettings = {},
): Promise<{ root: string; removed: CacheEntryInfo[]; kept: CacheEntryInfo[] }> {
  const root = (await cacheRoot(settings)).dir;
  return { root, ...(await clearCache(root)) };
}
