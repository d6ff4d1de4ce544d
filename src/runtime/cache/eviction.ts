/**
 * Listing and removing cache entries: `model-server cache list|clear`, and least-recently-used eviction past the
 * size cap after each new extraction. An entry a live process uses is never removed; see removeEntry for how that
 * holds against a process that starts using it at the same moment.
 */
import { readdir, rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import {
  deleteTrashed,
  type EntryRecord,
  emptyTrash,
  entryPaths,
  isEntryName,
  LOCK_DIR,
  liveUsers,
  readRecord,
  removeStaleTemps,
  TMP_DIR,
  trashEntry,
} from './entry-store.js';
import { type CacheCap, capBytes } from './location.js';
import { tryLock } from './lock.js';

/** One entry as `cache list` shows it. */
export interface CacheEntryInfo {
  key: string;
  dir: string;
  /** Null for a broken entry (no readable entry.json): it is removed at the next eviction or clear. */
  record: EntryRecord | null;
  bytes: number;
  lastUsed: Date;
  /** Live processes using it now. */
  users: number;
}

/** Every entry under root, most recently used first. */
export async function listCache(root: string): Promise<CacheEntryInfo[]> {
  const names = await readdir(root).catch(() => [] as string[]);
  const out: CacheEntryInfo[] = [];
  for (const key of names.filter(isEntryName)) {
    const paths = entryPaths(root, key);
    const record = await readRecord(paths);
    const st = await stat(record ? paths.record : paths.dir).catch(() => null);
    if (!st) continue;
    out.push({ key, dir: paths.dir, record, bytes: record?.bytes ?? 0, lastUsed: st.mtime, users: await liveUsers(paths.users) });
  }
  return out.sort((a, b) => b.lastUsed.getTime() - a.lastUsed.getTime());
}

export type RemoveOutcome = 'removed' | 'in-use' | 'busy';

/**
 * Removes one entry unless a live process uses it ('in-use') or holds its lock ('busy'). Under the key's lock, the
 * entry is checked for users, moved to .trash in one rename, and checked again: a process that added its marker
 * between the check and the rename is seen there, and the entry is moved back. A process that looks a moment later
 * finds nothing, takes the lock, waits for us, and then sees the entry again or extracts it anew.
 */
export async function removeEntry(root: string, key: string): Promise<RemoveOutcome> {
  const paths = entryPaths(root, key);
  const lock = await tryLock(paths.lock);
  if (!lock) return 'busy';
  let aside: string | null;
  try {
    if ((await liveUsers(paths.users)) > 0) return 'in-use';
    aside = await trashEntry(root, paths.dir);
    if (aside !== null && (await liveUsers(join(aside, 'users'))) > 0) {
      await rename(aside, paths.dir);
      return 'in-use';
    }
  } finally {
    await lock.release();
  }
  if (aside !== null) await deleteTrashed(aside);
  return 'removed';
}

/**
 * Evicts least recently used entries (broken ones first) until the cache fits its cap; entries in `keep` (the one
 * just extracted), in use or locked are skipped. Leftovers of killed extractions go first. Resolves with what was
 * removed.
 */
export async function enforceCap(root: string, cap: CacheCap, keep: ReadonlySet<string>): Promise<CacheEntryInfo[]> {
  // what killed extractions left is not counted, but it takes disk space all the same
  await sweepLeftovers(root);
  const entries = await listCache(root);
  let total = entries.reduce((n, e) => n + e.bytes, 0);
  const limit = await capBytes(root, cap, total);
  const removed: CacheEntryInfo[] = [];
  const candidates = [...entries].reverse().sort((a, b) => Number(a.record !== null) - Number(b.record !== null));
  for (const e of candidates) {
    if (e.record !== null && total <= limit) break;
    if (keep.has(e.key) || e.users > 0) continue;
    if ((await removeEntry(root, e.key)) === 'removed') {
      total -= e.bytes;
      removed.push(e);
    }
  }
  return removed;
}

/** Removes temp dirs of extractions that died (their key's lock is free or stale), stale locks and the trash. */
async function sweepLeftovers(root: string): Promise<void> {
  const keys = new Set<string>();
  for (const n of await readdir(join(root, TMP_DIR)).catch(() => [] as string[])) keys.add(n.split('.')[0]!);
  for (const n of await readdir(join(root, LOCK_DIR)).catch(() => [] as string[])) if (n.endsWith('.lock')) keys.add(n.slice(0, -5));
  for (const key of keys) {
    const lock = await tryLock(entryPaths(root, key).lock);
    if (!lock) continue;
    await removeStaleTemps(root, key);
    await lock.release();
  }
  await emptyTrash(root);
}

/** Removes every entry not in use, leftover temp dirs of dead extractions, stale locks and the trash. */
export async function clearCache(root: string): Promise<{ removed: CacheEntryInfo[]; kept: CacheEntryInfo[] }> {
  const removed: CacheEntryInfo[] = [];
  const kept: CacheEntryInfo[] = [];
  for (const e of await listCache(root)) ((await removeEntry(root, e.key)) === 'removed' ? removed : kept).push(e);
  await sweepLeftovers(root);
  return { removed, kept };
}
