/** The cache's lock files: who counts as a live owner, and when a lock is taken over. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { STALE_MS, tryLock } from '../../src/runtime/cache/lock.js';
import { isAlive, selfIdentity } from '../../src/runtime/cache/process-identity.js';
import { tempDir } from '../helpers/util.js';

async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  return new Promise((resolve) => child.on('exit', () => resolve(child.pid!)));
}

const lockText = (o: Record<string, unknown>): string => JSON.stringify({ boot: null, start: null, nonce: 'n0', ...o });

test('identity: this process is alive; a dead pid, another boot or a reused pid is not; another host is unknown', async () => {
  const me = selfIdentity();
  assert.equal(isAlive(me), true);
  assert.equal(isAlive({ ...me, pid: await deadPid() }), false);
  assert.equal(isAlive({ ...me, host: 'elsewhere' }), 'unknown');
  if (me.boot !== null) assert.equal(isAlive({ ...me, boot: 'another-boot' }), false);
  // pid 1 in a restarted container: the same pid and host, another process start
  if (me.start !== null) assert.equal(isAlive({ ...me, start: `${me.start}1` }), false);
});

test('a lock is exclusive until released; a second tryLock sees it held', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'locks', 'k.lock');
  const a = await tryLock(path);
  assert.ok(a, 'the first takes it (creating the directory)');
  assert.equal(await tryLock(path), null);
  await a.release();
  assert.equal(existsSync(path), false);
  const b = await tryLock(path);
  assert.ok(b);
  await b.release();
});

test('stale locks are taken over: a dead owner, an empty file left by a crash, a silent owner on another host', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'k.lock');
  const old = new Date(Date.now() - STALE_MS - 5_000);

  await writeFile(path, lockText({ pid: await deadPid(), host: hostname() }));
  const a = await tryLock(path);
  assert.ok(a, 'dead owner');
  assert.notEqual(JSON.parse(await readFile(path, 'utf8')).nonce, 'n0', 'the file is ours now');
  await a.release();

  await writeFile(path, '');
  assert.equal(await tryLock(path), null, 'an empty lock just created: its owner is writing it');
  await utimes(path, old, old);
  const b = await tryLock(path);
  assert.ok(b, 'an empty lock long left');
  await b.release();

  await writeFile(path, lockText({ pid: process.pid, host: 'another-host' }));
  assert.equal(await tryLock(path), null, 'another host, fresh heartbeat');
  await utimes(path, old, old);
  const c = await tryLock(path);
  assert.ok(c, 'another host, no heartbeat for longer than STALE_MS');
  await c.release();

  await writeFile(path, lockText({ ...selfIdentity(), pid: process.ppid, start: null }));
  assert.equal(await tryLock(path), null, 'a live owner on this host keeps it, however old the file');
});

test('release never removes a lock that is no longer ours', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'k.lock');
  const a = await tryLock(path);
  assert.ok(a);
  await writeFile(path, lockText({ pid: process.ppid, host: hostname(), nonce: 'someone-else' }));
  await a.release();
  assert.equal(JSON.parse(await readFile(path, 'utf8')).nonce, 'someone-else');
});
