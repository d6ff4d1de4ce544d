/**
 * The persistent extraction cache: hits and misses, what invalidates an entry, the warm check, a crash mid-extract,
 * two processes at once, eviction, and the hostile archives that must keep failing.
 */
import assert from 'node:assert/strict';
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, stat, truncate, unlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { type TestContext, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { MarError } from '../../src/errors.js';
import { listCache } from '../../src/runtime/cache/eviction.js';
import { acquireExtraction, clearExtractionCache } from '../../src/runtime/extraction-cache.js';
import { packagePath } from '../../src/util/package-info.js';
import { buildReferenceArchives } from '../helpers/reference-archives.js';
import { run, tempDir } from '../helpers/util.js';

const ZIP_FILES = `
import json, sys, zipfile
out, files = sys.argv[1], json.loads(sys.argv[2])
with zipfile.ZipFile(out, "w") as z:
    for name, path, method in files:
        z.write(path, name, zipfile.ZIP_DEFLATED if method == "deflate" else zipfile.ZIP_STORED)
`;

/** A .mar of the given files (name -> content), written by Python's zipfile; weights stored, the rest deflated. */
async function makeMar(dir: string, name: string, files: Record<string, Buffer | string>): Promise<string> {
  const src = join(dir, `${name}.src`);
  await mkdir(src, { recursive: true });
  const list: Array<[string, string, string]> = [];
  for (const [entry, content] of Object.entries(files)) {
    const p = join(src, entry.replace(/\//g, '_'));
    await writeFile(p, content);
    list.push([entry, p, entry.endsWith('.bin') ? 'store' : 'deflate']);
  }
  const out = join(dir, `${name}.mar`);
  const r = await run('python3', ['-c', ZIP_FILES, out, JSON.stringify(list)]);
  assert.equal(r.code, 0, r.stderr);
  return out;
}

const HANDLER = 'def handle(data, context):\n    return data\n';

async function setup(t: TestContext): Promise<{ dir: string; cache: string; mar: string; weights: Buffer }> {
  const dir = await tempDir(t);
  const weights = randomBytes(9 << 20);
  const mar = await makeMar(dir, 'model', { 'handler.py': HANDLER, 'weights.bin': weights });
  return { dir, cache: join(dir, 'cache'), mar, weights };
}

async function entryKeys(cache: string): Promise<string[]> {
  return (await listCache(cache)).map((e) => e.key).sort();
}

async function open(mar: string, cache: string): Promise<{ dir: string; outcome: string }> {
  const lease = await acquireExtraction(mar, { dir: cache });
  await lease.release();
  return { dir: lease.dir, outcome: lease.outcome };
}

test('miss, then hits: the extraction outlives its users and is found again without extracting', async (t) => {
  const { cache, mar, weights } = await setup(t);
  const first = await acquireExtraction(mar, { dir: cache });
  assert.equal(first.outcome, 'extracted');
  assert.ok((await readFile(join(first.dir, 'weights.bin'))).equals(weights));
  const ino = (await stat(join(first.dir, 'weights.bin'))).ino;
  await first.release();
  const again = await open(mar, cache);
  assert.deepEqual(again, { dir: first.dir, outcome: 'hit' });
  assert.equal((await stat(join(first.dir, 'weights.bin'))).ino, ino, 'the same files, not a new extraction');
  assert.equal((await entryKeys(cache)).length, 1);
});

test('a changed archive is a new key: touch, rewrite in place, replace with the same size, same size and mtime', async (t) => {
  const { dir, cache, mar } = await setup(t);
  const keys = new Set<string>();
  const expectMiss = async (what: string): Promise<void> => {
    const r = await open(mar, cache);
    assert.equal(r.outcome, 'extracted', what);
    keys.add(r.dir);
    assert.equal((await open(mar, cache)).outcome, 'hit', `${what}, then unchanged`);
  };
  await expectMiss('first open');

  const later = new Date(Date.now() + 5_000);
  await utimes(mar, later, later);
  await expectMiss('touch');

  // same inode, new bytes (another weights file of the same size): mtime changes
  const other = await makeMar(dir, 'other', { 'handler.py': HANDLER, 'weights.bin': randomBytes(9 << 20) });
  await writeFile(mar, await readFile(other));
  await expectMiss('rewrite in place');

  // a different archive of the same size renamed over it: a new inode
  const same = await makeMar(dir, 'same', { 'handler.py': HANDLER, 'weights.bin': randomBytes(9 << 20) });
  assert.equal((await stat(same)).size, (await stat(mar)).size);
  await rename(same, mar);
  await expectMiss('replace with the same size');

  // same inode, same size, same mtime, other content: only the central directory (CRC-32s) tells. utimes cannot
  // set nanoseconds, so the mtime is first set to a whole second it can restore exactly.
  const whole = new Date(Math.floor(Date.now() / 1000) * 1000 - 20_000);
  await utimes(mar, whole, whole);
  await expectMiss('touch to a whole second');
  const before = await stat(mar, { bigint: true });
  const third = await makeMar(dir, 'third', { 'handler.py': HANDLER, 'weights.bin': randomBytes(9 << 20) });
  await writeFile(mar, await readFile(third));
  await utimes(mar, whole, whole);
  const after = await stat(mar, { bigint: true });
  assert.deepEqual([after.ino, after.size, after.mtimeNs], [before.ino, before.size, before.mtimeNs]);
  await expectMiss('same size, mtime and inode, other entries');
  assert.equal(keys.size, 6);
});

test('a .tar.gz rewritten with the same size and mtime is a new key (its gzip trailer holds the CRC-32)', async (t) => {
  const dir = await tempDir(t);
  const cache = join(dir, 'cache');
  const tgz = join(dir, 'model.tar.gz');
  const make = async (): Promise<Buffer> => {
    await mkdir(join(dir, 'm'), { recursive: true });
    await writeFile(join(dir, 'm', 'handler.py'), HANDLER);
    await writeFile(join(dir, 'm', 'weights.bin'), randomBytes(100_000));
    const r = await run('tar', ['cf', join(dir, 'tmp.tar'), '-C', dir, 'm']);
    assert.equal(r.code, 0, r.stderr);
    // level 0: stored deflate blocks, so the same tar length always gives the same .tar.gz length
    return gzipSync(await readFile(join(dir, 'tmp.tar')), { level: 0 });
  };
  await writeFile(tgz, await make());
  // utimes cannot set nanoseconds: a whole second can be restored exactly
  const whole = new Date(Math.floor(Date.now() / 1000) * 1000 - 20_000);
  await utimes(tgz, whole, whole);
  const first = await open(tgz, cache);
  assert.equal(first.outcome, 'extracted');
  assert.ok(existsSync(join(first.dir, 'handler.py')), 'the <name>/ root is dropped as TorchServe does');
  assert.equal((await open(tgz, cache)).outcome, 'hit');
  const before = await stat(tgz, { bigint: true });
  const replacement = await make();
  assert.equal(BigInt(replacement.length), before.size, 'the same files, other bytes: the same length');
  await writeFile(tgz, replacement);
  await utimes(tgz, whole, whole);
  const after = await stat(tgz, { bigint: true });
  assert.deepEqual([after.ino, after.size, after.mtimeNs], [before.ino, before.size, before.mtimeNs]);
  assert.equal((await open(tgz, cache)).outcome, 'extracted');
});

test('the warm check: a file changed in size or removed in the cache is extracted again', async (t) => {
  const { cache, mar, weights } = await setup(t);
  const { dir } = await open(mar, cache);
  await truncate(join(dir, 'weights.bin'), 100);
  assert.equal((await open(mar, cache)).outcome, 'extracted');
  assert.ok((await readFile(join(dir, 'weights.bin'))).equals(weights));
  await unlink(join(dir, 'handler.py'));
  assert.equal((await open(mar, cache)).outcome, 'extracted');
  assert.equal(await readFile(join(dir, 'handler.py'), 'utf8'), HANDLER);
  assert.equal((await open(mar, cache)).outcome, 'hit');
  assert.equal((await entryKeys(cache)).length, 1);
});

/**
 * A child process that acquires the archive. With a gate, it stops inside the extraction right after creating
 * weights.bin (and writing a few bytes), prints PAUSED and waits for a line on stdin. It prints WAITING when it has
 * to wait for another process's extraction, then {"outcome","dir"} and exits (or, with hold, keeps the lease).
 */
const CHILD = String.raw`
import fsp from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import { createInterface } from 'node:readline';
const [moduleUrl, archive, cacheDir, gate, hold] = process.argv.slice(1);
if (gate) {
  const realOpen = fsp.open;
  fsp.open = async function (path, flags, mode) {
    const fh = await realOpen.call(this, path, flags, mode);
    if (flags === 'wx' && String(path).endsWith(gate)) {
      await fh.write(Buffer.from('partial'), 0, 7, 0);
      process.stdout.write('PAUSED\n');
      await new Promise((resolve) => {
        const rl = createInterface({ input: process.stdin });
        rl.once('line', () => (rl.close(), resolve()));
      });
    }
    return fh;
  };
  syncBuiltinESMExports();
}
const { acquireExtraction } = await import(moduleUrl);
const lease = await acquireExtraction(archive, { dir: cacheDir }, { onWait: () => process.stdout.write('WAITING\n') });
process.stdout.write(JSON.stringify({ outcome: lease.outcome, dir: lease.dir }) + '\n');
if (hold) setInterval(() => {}, 1000);
else await lease.release();
`;

interface Child {
  proc: ChildProcessWithoutNullStreams;
  line(re: RegExp): Promise<string>;
  exited: Promise<number | null>;
}

function child(t: TestContext, archive: string, cache: string, gate = '', hold = false): Child {
  const moduleUrl = `file://${packagePath('dist', 'src', 'runtime', 'extraction-cache.js')}`;
  const proc = spawn(process.execPath, ['--input-type=module', '-e', CHILD, moduleUrl, archive, cache, gate, hold ? 'hold' : ''], {
    stdio: 'pipe',
  });
  t.after(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  });
  const lines: string[] = [];
  const waiters: Array<{ re: RegExp; resolve: (l: string) => void }> = [];
  let stderr = '';
  proc.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  createInterface({ input: proc.stdout }).on('line', (l) => {
    lines.push(l);
    for (const w of waiters.splice(0)) (w.re.test(l) ? w.resolve(l) : waiters.push(w)) as unknown;
  });
  return {
    proc,
    exited,
    line: (re) => {
      const seen = lines.find((l) => re.test(l));
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        waiters.push({ re, resolve });
        void exited.then((code) => reject(new Error(`child exited (${code}) before ${re}: ${lines.join('\n')} ${stderr}`)));
      });
    },
  };
}

test('a process killed mid-extract leaves no entry that looks complete; the next one extracts again', async (t) => {
  const { cache, mar, weights } = await setup(t);
  const a = child(t, mar, cache, 'weights.bin');
  await a.line(/^PAUSED$/);
  assert.equal((await readdir(join(cache, '.tmp'))).length, 1, 'the extraction is under way in .tmp');
  a.proc.kill('SIGKILL');
  await a.exited;
  assert.deepEqual(await entryKeys(cache), [], 'nothing published');
  assert.equal((await readdir(join(cache, '.locks'))).length, 1, 'its lock is left behind');

  const b = await acquireExtraction(mar, { dir: cache });
  t.after(() => b.release());
  assert.equal(b.outcome, 'extracted', 'the dead process lock is taken over and the archive extracted');
  assert.ok((await readFile(join(b.dir, 'weights.bin'))).equals(weights));
  assert.deepEqual(await readdir(join(cache, '.tmp')), [], "the dead extraction's temp dir is removed");
  assert.deepEqual(await readdir(join(cache, '.locks')), [], 'the lock is released');
});

test('two processes extracting the same archive: one writes, the other waits and reuses it', async (t) => {
  const { cache, mar, weights } = await setup(t);
  const a = child(t, mar, cache, 'weights.bin');
  await a.line(/^PAUSED$/);
  const b = child(t, mar, cache);
  await b.line(/^WAITING$/);
  a.proc.stdin.end('go\n');
  const ra = JSON.parse(await a.line(/^\{/)) as { outcome: string; dir: string };
  const rb = JSON.parse(await b.line(/^\{/)) as { outcome: string; dir: string };
  assert.deepEqual([ra.outcome, rb.outcome], ['extracted', 'hit']);
  assert.equal(ra.dir, rb.dir);
  assert.deepEqual([await a.exited, await b.exited], [0, 0]);
  assert.ok((await readFile(join(ra.dir, 'weights.bin'))).equals(weights));
  assert.deepEqual(await readdir(join(cache, '.tmp')), []);
});

test('eviction: least recently used entries go past the cap; an entry in use stays', async (t) => {
  const dir = await tempDir(t);
  const cache = join(dir, 'cache');
  const mib = (n: number): Buffer => randomBytes(n << 20);
  const mars: Record<string, string> = {};
  for (const name of ['a', 'b', 'c', 'd']) mars[name] = await makeMar(dir, name, { 'handler.py': HANDLER, 'weights.bin': mib(1) });
  const cap = (bytes: number) => ({ dir: cache, maxSize: { bytes } });
  const use = async (name: string, bytes: number): Promise<string> => {
    const l = await acquireExtraction(mars[name]!, cap(bytes));
    await l.release();
    return l.dir;
  };
  const big = 100 << 20;
  const da = await use('a', big);
  const db = await use('b', big);
  // a is used again, so b is now the least recently used
  const past = new Date(Date.now() - 60_000);
  await utimes(join(db, '..', 'entry.json'), past, past);
  await use('a', big);
  const dc = await use('c', (5 << 20) / 2);
  assert.deepEqual([existsSync(da), existsSync(db), existsSync(dc)], [true, false, true], 'b evicted, a and c kept');

  // a held open by this process: kept although the cap now fits only the newest entry
  const held = await acquireExtraction(mars['a']!, cap(big));
  t.after(() => held.release());
  const dd = await use('d', 1 << 20);
  assert.deepEqual([existsSync(da), existsSync(dc), existsSync(dd)], [true, false, true], 'c evicted, a in use and d kept');
});

test('concurrent extractions in one process: the cap is enforced once the last is done; none it extracted goes', async (t) => {
  const dir = await tempDir(t);
  const cache = join(dir, 'cache');
  const mars: Record<string, string> = {};
  for (const name of ['a', 'b', 'c']) {
    mars[name] = await makeMar(dir, name, { 'handler.py': HANDLER, 'weights.bin': randomBytes(name === 'a' ? 1 << 20 : 3 << 20) });
  }
  const settings = (bytes: number) => ({ dir: cache, maxSize: { bytes } });
  const a = await acquireExtraction(mars['a']!, settings(100 << 20));
  await a.release();
  // b and c at once, under a cap that fits neither: a (unused) must go, b and c (in use) stay
  const [b, c] = await Promise.all([acquireExtraction(mars['b']!, settings(1 << 20)), acquireExtraction(mars['c']!, settings(1 << 20))]);
  t.after(async () => {
    await b.release();
    await c.release();
  });
  assert.deepEqual([b.outcome, c.outcome], ['extracted', 'extracted']);
  assert.deepEqual([existsSync(a.dir), existsSync(b.dir), existsSync(c.dir)], [false, true, true], 'a evicted, b and c kept');
});

test('a marker left by a killed process does not pin an entry; cache clear keeps what a live process uses', async (t) => {
  const { dir, cache, mar } = await setup(t);
  const other = await makeMar(dir, 'other', { 'handler.py': HANDLER, 'weights.bin': randomBytes(1000) });
  const a = child(t, mar, cache, 'nothing-to-wait-for');
  await a.line(/^\{/);
  await a.exited;
  // a user killed while it holds the entry: its marker stays in users/
  const killed = child(t, mar, cache, '', true);
  const { dir: modelDir } = JSON.parse(await killed.line(/^\{/)) as { dir: string };
  killed.proc.kill('SIGKILL');
  await killed.exited;
  assert.equal((await readdir(join(modelDir, '..', 'users'))).length, 1, "the killed process's marker is still there");
  const live = await acquireExtraction(other, { dir: cache });
  t.after(() => live.release());
  const r = await clearExtractionCache({ dir: cache });
  assert.deepEqual(
    r.removed.map((e) => e.record?.archive),
    [mar],
  );
  assert.deepEqual(
    r.kept.map((e) => e.record?.archive),
    [other],
  );
  assert.ok(existsSync(live.dir));
});

test('tampered and escaping archives keep failing, and leave no entry, temp dir or lock', async (t) => {
  const dir = await tempDir(t);
  const cache = join(dir, 'cache');
  const paths = await buildReferenceArchives(dir, ['bad-crc', 'dotdot', 'truncated', 'tgz-dotdot']);
  const expected = { 'bad-crc': 'ARCHIVE_CORRUPT', dotdot: 'ARCHIVE_UNSAFE', truncated: 'ARCHIVE_CORRUPT', 'tgz-dotdot': 'ARCHIVE_UNSAFE' };
  for (const [shape, code] of Object.entries(expected)) {
    await assert.rejects(
      acquireExtraction(paths[shape as keyof typeof paths], { dir: cache }),
      (e: unknown) => e instanceof MarError && e.code === code,
      shape,
    );
  }
  assert.deepEqual(await entryKeys(cache), []);
  assert.deepEqual(await readdir(join(cache, '.tmp')), []);
  assert.deepEqual(await readdir(join(cache, '.locks')), []);
});
