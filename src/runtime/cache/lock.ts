/**
 * A lock file per cache entry, so that processes extracting the same archive wait for one another instead of both
 * writing. Node has no flock(), so the lock is a file created with O_EXCL holding the owner's identity and a nonce.
 *
 * A lock is stale when its owner is dead (same host: pid, boot id and start time, see process-identity.ts) or,
 * for an owner on another host, when its heartbeat (the owner touches the file every STALE_MS / 4) is older than
 * STALE_MS. A stale lock is taken over by renaming it aside and checking that what was moved is the lock judged
 * stale; if a new owner slipped in, its lock is put back. Correctness never rests on the lock alone: an entry is
 * only published by an atomic rename of a complete directory, so the worst a lost race costs is duplicate work.
 */
import { randomBytes } from 'node:crypto';
import { link, mkdir, open, readFile, rename, stat, unlink, utimes } from 'node:fs/promises';
import { dirname } from 'node:path';
import { describeFsError, MarError } from '../../errors.js';
import { isAlive, type ProcessIdentity, parseIdentity, selfIdentity } from './process-identity.js';

/** A lock whose owner on another host has not touched it for this long is taken over. */
export const STALE_MS = 30_000;
/** A lock file still empty this long after creation was left by a process killed between create and write. */
const EMPTY_GRACE_MS = 2_000;
const POLL_MIN_MS = 10;
const POLL_MAX_MS = 100;

interface LockContent extends ProcessIdentity {
  nonce: string;
}

/** A held lock. */
export interface CacheLock {
  readonly path: string;
  /** Removes the lock file (only if it is still ours). Idempotent. */
  release(): Promise<void>;
}

function parseLock(text: string): LockContent | null {
  const id = parseIdentity(text);
  if (!id) return null;
  const nonce = (JSON.parse(text) as { nonce?: unknown }).nonce;
  return typeof nonce === 'string' ? { ...id, nonce } : null;
}

async function readLock(path: string): Promise<{ content: LockContent | null; mtimeMs: number } | null> {
  try {
    const [text, st] = await Promise.all([readFile(path, 'utf8'), stat(path)]);
    return { content: parseLock(text), mtimeMs: st.mtimeMs };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** Tries once to create the lock; true when it is ours. */
async function tryCreate(path: string, content: LockContent): Promise<boolean> {
  let fh;
  try {
    fh = await open(path, 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    await mkdir(dirname(path), { recursive: true });
    return tryCreate(path, content);
  }
  try {
    await fh.writeFile(JSON.stringify(content));
  } finally {
    await fh.close();
  }
  return true;
}

function isStale(held: { content: LockContent | null; mtimeMs: number }, now: number): boolean {
  if (held.content === null) return now - held.mtimeMs > EMPTY_GRACE_MS;
  const alive = isAlive(held.content);
  return alive === 'unknown' ? now - held.mtimeMs > STALE_MS : !alive;
}

/** Moves a stale lock aside; if what was moved turns out to be a fresh owner's lock, puts it back. */
async function takeOver(path: string, staleNonce: string | null): Promise<void> {
  const aside = `${path}.stale-${randomBytes(6).toString('hex')}`;
  try {
    await rename(path, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  const moved = parseLock(await readFile(aside, 'utf8').catch(() => ''));
  if ((moved?.nonce ?? null) !== staleNonce) await link(aside, path).catch(() => undefined);
  await unlink(aside).catch(() => undefined);
}

/** Tries once to take the lock without waiting (a stale one is taken over); null when a live owner holds it. */
export async function tryLock(path: string): Promise<CacheLock | null> {
  const content: LockContent = { ...selfIdentity(), nonce: randomBytes(12).toString('hex') };
  for (let attempt = 0; attempt < 3; attempt++) {
    if (await tryCreate(path, content)) return heldLock(path, content.nonce);
    const held = await readLock(path);
    if (held === null) continue;
    if (!isStale(held, Date.now())) return null;
    await takeOver(path, held.content?.nonce ?? null);
  }
  return null;
}

/**
 * Takes the lock, waiting (polling with backoff) while a live owner holds it. `onWait` is called once when the
 * first attempt finds it held (for a log line).
 */
export async function acquireLock(path: string, onWait?: (holder: ProcessIdentity | null) => void): Promise<CacheLock> {
  let delay = POLL_MIN_MS;
  let told = false;
  for (;;) {
    let lock: CacheLock | null;
    try {
      lock = await tryLock(path);
    } catch (err) {
      throw new MarError('OUTPUT_FAILED', `cannot lock ${path}: ${describeFsError(err)}; check the model cache's permissions`, {
        cause: err,
      });
    }
    if (lock) return lock;
    if (!told) {
      told = true;
      onWait?.((await readLock(path).catch(() => null))?.content ?? null);
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(POLL_MAX_MS, delay * 2);
  }
}

function heldLock(path: string, nonce: string): CacheLock {
  // The heartbeat lets processes on other hosts tell a slow owner from a dead one.
  const beat = setInterval(() => {
    const now = new Date();
    utimes(path, now, now).catch(() => undefined);
  }, STALE_MS / 4);
  beat.unref();
  let released = false;
  return {
    path,
    async release() {
      if (released) return;
      released = true;
      clearInterval(beat);
      const text = await readFile(path, 'utf8').catch(() => '');
      if (parseLock(text)?.nonce === nonce) await unlink(path).catch(() => undefined);
    },
  };
}
