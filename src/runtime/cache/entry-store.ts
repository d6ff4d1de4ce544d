/**
 * The cache entries on disk, and what makes one trustworthy:
 *
 *   <root>/<key>/entry.json        the archive it came from, its fingerprint, bytes and file count; its mtime is the
 *                                  entry's last use (LRU)
 *   <root>/<key>/files.json        every extracted file with its size, for the warm check
 *   <root>/<key>/model/            the extracted model
 *   <root>/<key>/users/<marker>    one per live process using the entry; eviction skips entries with a live one
 *   <root>/.locks/<key>.lock       held while the entry is extracted or removed (lock.ts)
 *   <root>/.tmp/<key>.<pid>.<hex>/ an extraction in progress
 *   <root>/.trash/                 entries being deleted
 *
 * An entry is complete by construction: it is extracted below .tmp, its records are written last, and one rename
 * publishes the whole directory. A crash of the process at any point leaves either no entry or a complete one (plus
 * temp files the next holder of the lock removes). Where fsync matters is a power loss, and there the warm check
 * decides, not the order of writes: the record (entry.json) is fsynced before the rename, so a published entry
 * that survives has its record whole; the extracted files are not fsynced one by one (that would cost the disk's
 * write time on every cold load, and with it the directories' fsyncs, a journal commit each), so files whose data
 * never reached the disk come back shorter or missing on ext4, XFS and btrfs, and the size check of every warm
 * hit finds them and extracts again. A lost files.json or a lost rename costs the same re-extraction.
 */
import { randomBytes } from 'node:crypto';
import { lstatSync, readdirSync, unlinkSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, unlink, utimes, writeFile } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import type { ArchiveFingerprint } from '../../archive/fingerprint.js';
import { isAlive, parseIdentity, selfIdentity } from './process-identity.js';

/** Bumped when the entry layout changes: entries of another version are garbage to this one. */
export const ENTRY_VERSION = 1;

/** What entry.json records. */
export interface EntryRecord {
  version: number;
  key: string;
  /** The archive's absolute path when it was extracted. */
  archive: string;
  fingerprint: ArchiveFingerprint;
  /** Sum of the extracted files' sizes. */
  bytes: number;
  files: number;
  /** ISO time of the extraction. */
  created: string;
}

export interface EntryPaths {
  dir: string;
  model: string;
  record: string;
  files: string;
  users: string;
  lock: string;
}

export const TMP_DIR = '.tmp';
export const LOCK_DIR = '.locks';
export const TRASH_DIR = '.trash';

export function entryPaths(root: string, key: string): EntryPaths {
  const dir = join(root, key);
  return {
    dir,
    model: join(dir, 'model'),
    record: join(dir, 'entry.json'),
    files: join(dir, 'files.json'),
    users: join(dir, 'users'),
    lock: join(root, LOCK_DIR, `${key}.lock`),
  };
}

/** Cache keys are hex (fingerprint.ts); anything else in the root (dot dirs, stray files) is not an entry. */
export function isEntryName(name: string): boolean {
  return /^[0-9a-f]{32}$/.test(name);
}

export async function readRecord(paths: EntryPaths): Promise<EntryRecord | null> {
  try {
    const r = JSON.parse(await readFile(paths.record, 'utf8')) as EntryRecord;
    return r && r.version === ENTRY_VERSION && typeof r.key === 'string' && typeof r.bytes === 'number' ? r : null;
  } catch {
    return null;
  }
}

/**
 * The warm check: the entry was made from an archive with this fingerprint, and every file it extracted is still a
 * regular file of the same size. Null when it passes, else why not. Synchronous stats: a few microseconds each,
 * far cheaper than a thread-pool round trip per file.
 */
export async function verifyEntry(paths: EntryPaths, fp: ArchiveFingerprint): Promise<string | null> {
  const record = await readRecord(paths);
  if (!record) return 'its entry.json is missing or unreadable';
  if (record.key !== fp.key || record.fingerprint.size !== fp.size || record.fingerprint.mtimeNs !== fp.mtimeNs) {
    return 'it was made from another archive';
  }
  let files: Array<[string, number]>;
  try {
    files = JSON.parse(await readFile(paths.files, 'utf8')) as Array<[string, number]>;
  } catch {
    return 'its files.json is missing or unreadable';
  }
  if (!Array.isArray(files) || files.length !== record.files) return 'its file list does not match entry.json';
  for (const [rel, size] of files) {
    const st = lstatSync(join(paths.model, rel), { throwIfNoEntry: false });
    if (!st?.isFile()) return `${rel} is missing`;
    if (st.size !== size) return `${rel} has ${st.size} bytes instead of ${size}`;
  }
  return null;
}

/** Marks the entry as used now (its entry.json's mtime orders eviction). */
export async function touchEntry(paths: EntryPaths): Promise<void> {
  const now = new Date();
  await utimes(paths.record, now, now).catch(() => undefined);
}

// ---- users: which live processes hold an entry open ----

const MARKER = `${process.pid}.${randomBytes(4).toString('hex')}`;
/** Entries this process has a marker in, removed synchronously on exit. */
const marked = new Set<string>();
let exitHook = false;

/** Remembers an entry this process marked, so that its marker goes when the process exits. */
function remember(usersDir: string): void {
  marked.add(usersDir);
  if (exitHook) return;
  exitHook = true;
  // A process that exits without releasing (process.exit, a fatal error) must not pin its entries for ever.
  process.once('exit', () => {
    for (const users of marked) {
      try {
        unlinkSync(join(users, MARKER));
      } catch {
        /* the entry is gone, or a later liveUsers() drops the marker */
      }
    }
  });
}

/** Adds this process's marker; false when the entry is not there (ENOENT). */
export async function addUser(paths: EntryPaths): Promise<boolean> {
  try {
    await writeFile(join(paths.users, MARKER), JSON.stringify(selfIdentity()));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return false;
    throw err;
  }
  remember(paths.users);
  return true;
}

export async function removeUser(paths: EntryPaths): Promise<void> {
  marked.delete(paths.users);
  await unlink(join(paths.users, MARKER)).catch(() => undefined);
}

/** How many live processes use the entry (dead processes' markers are deleted on the way). */
export async function liveUsers(usersDir: string): Promise<number> {
  let names: string[];
  try {
    names = await readdir(usersDir);
  } catch {
    return 0;
  }
  let live = 0;
  for (const n of names) {
    const id = parseIdentity(await readFile(join(usersDir, n), 'utf8').catch(() => ''));
    // another host's marker cannot be checked: count it, `cache clear` or its own exit removes it
    if (id && isAlive(id) !== false) live++;
    else await unlink(join(usersDir, n)).catch(() => undefined);
  }
  return live;
}

// ---- publishing ----

async function writeSynced(path: string, text: string): Promise<void> {
  const fh = await open(path, 'wx', 0o644);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Every regular file below dir with its size, as [posix relative path, size]. */
function listFiles(dir: string): Array<[string, number]> {
  const out: Array<[string, number]> = [];
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    const abs = join(e.parentPath ?? e.path, e.name);
    out.push([relative(dir, abs).split(sep).join('/'), lstatSync(abs).size]);
  }
  return out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

/** A fresh temp directory for extracting `key` (the caller holds the key's lock). */
export async function makeTempEntry(root: string, key: string): Promise<string> {
  const tmp = join(root, TMP_DIR, `${key}.${process.pid}.${randomBytes(4).toString('hex')}`);
  await mkdir(tmp, { recursive: true, mode: 0o700 });
  return tmp;
}

/**
 * Publishes an extracted temp entry (its model/ filled): writes files.json, this process's user marker and entry.json
 * (fsynced), then renames it to <root>/<key> in one step. The caller holds the key's lock and
 * has moved any old entry of that key away.
 */
export async function publishEntry(
  root: string,
  tmp: string,
  record: Omit<EntryRecord, 'version' | 'bytes' | 'files'>,
): Promise<EntryRecord> {
  const files = listFiles(join(tmp, 'model'));
  const full: EntryRecord = { version: ENTRY_VERSION, ...record, bytes: files.reduce((n, [, s]) => n + s, 0), files: files.length };
  await writeFile(join(tmp, 'files.json'), JSON.stringify(files), { flag: 'wx' });
  await mkdir(join(tmp, 'users'));
  await writeFile(join(tmp, 'users', MARKER), JSON.stringify(selfIdentity()));
  // entry.json last, fsynced (see the module comment): the rename below is what makes the entry visible
  await writeSynced(join(tmp, 'entry.json'), JSON.stringify(full, null, 2));
  const paths = entryPaths(root, record.key);
  await rename(tmp, paths.dir);
  remember(paths.users);
  return full;
}

/** Moves an entry out of the way into .trash in one rename; false when it was not there. Delete it with deleteTrashed. */
export async function trashEntry(root: string, dir: string): Promise<string | null> {
  const trash = join(root, TRASH_DIR);
  // the time in the name: emptyTrash leaves recent ones to their owner, which may still move one back (eviction.ts)
  const aside = join(trash, `${Date.now()}.${randomBytes(6).toString('hex')}`);
  await mkdir(trash, { recursive: true });
  try {
    await rename(dir, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  return aside;
}

/** Deletes what trashEntry moved aside (best effort: a later emptyTrash finishes the job). */
export async function deleteTrashed(aside: string): Promise<void> {
  await rm(aside, { recursive: true, force: true }).catch(() => undefined);
}

/** Temp dirs of `key` left by extractions that died (the caller holds the key's lock, so none is in progress). */
export async function removeStaleTemps(root: string, key: string): Promise<void> {
  const names = await readdir(join(root, TMP_DIR)).catch(() => [] as string[]);
  for (const n of names)
    if (n.startsWith(`${key}.`)) await rm(join(root, TMP_DIR, n), { recursive: true, force: true }).catch(() => undefined);
}

/** Deletes what is in .trash for over a minute (deletions a killed process left unfinished). */
export async function emptyTrash(root: string): Promise<void> {
  const names = await readdir(join(root, TRASH_DIR)).catch(() => [] as string[]);
  // (a name without a time is not ours to wait for: deleted)
  for (const n of names) if (!(Date.now() - Number(n.split('.')[0]) < 60_000)) await deleteTrashed(join(root, TRASH_DIR, n));
}
