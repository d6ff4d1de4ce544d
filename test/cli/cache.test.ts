/** `model-server predict` over the persistent cache, and `model-server cache list|clear`. */
import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { createArchive } from '../../src/archive/pack.js';
import { acquireExtraction } from '../../src/runtime/extraction-cache.js';
import { FIXTURES, server, tempDir } from '../helpers/util.js';

async function makeArchive(dir: string, name: string): Promise<string> {
  await createArchive({ modelName: name, handler: 'noop:handle', modelPath: join(FIXTURES, 'handlers', 'python'), exportPath: dir });
  return join(dir, `${name}.mar`);
}

interface Listing {
  root: string;
  capBytes: number | null;
  totalBytes: number;
  entries: Array<{ key: string; archive: string; bytes: number; files: number; users: number; broken: boolean }>;
}

test('predict extracts into --cache-dir once; cache list shows the entry; cache clear empties it', async (t) => {
  const dir = await tempDir(t);
  const cache = join(dir, 'cache');
  const mar = await makeArchive(dir, 'noop');

  const first = await server(['predict', mar, '--data', 'x', '--quiet', '--cache-dir', cache]);
  assert.deepEqual([first.code, first.stdout], [0, 'OK'], first.stderr);
  let listing = JSON.parse((await server(['cache', 'list', '--json', '--cache-dir', cache])).stdout) as Listing;
  assert.equal(listing.root, cache);
  assert.equal(listing.entries.length, 1);
  const [entry] = listing.entries;
  assert.deepEqual([entry!.archive, entry!.users, entry!.broken], [mar, 0, false]);
  assert.ok(entry!.bytes > 0 && entry!.files > 1);
  const handlerFile = join(cache, entry!.key, 'model', 'noop.py');
  const ino = (await stat(handlerFile)).ino;

  // MAR_CACHE_DIR is the same setting for a run without the flag
  const second = await server(['predict', mar, '--data', 'x', '--quiet'], { env: { MAR_CACHE_DIR: cache } });
  assert.deepEqual([second.code, second.stdout], [0, 'OK'], second.stderr);
  assert.equal((await stat(handlerFile)).ino, ino, 'the second run reused the extraction');

  const text = await server(['cache', 'list', '--cache-dir', cache]);
  assert.equal(text.code, 0, text.stderr);
  const lines = text.stdout.trimEnd().split('\n');
  assert.match(lines[0]!, new RegExp(`^${cache}: 1 entry, [\\d.]+ KiB \\(cap [\\d.]+ [KMGT]iB: 25% of the disk space it could use\\)$`));
  assert.match(lines[1]!, /^KEY +SIZE +FILES +LAST USED \(UTC\) +USERS +ARCHIVE$/);
  assert.match(
    lines[2]!,
    new RegExp(`^${entry!.key.slice(0, 12)} +[\\d.]+ KiB +${entry!.files} +\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d +0 +${mar}$`),
  );

  const cleared = await server(['cache', 'clear', '--cache-dir', cache]);
  assert.equal(cleared.code, 0, cleared.stderr);
  assert.match(cleared.stdout, new RegExp(`^removed 1 entry \\([\\d.]+ KiB\\) from ${cache}\\n$`));
  listing = JSON.parse((await server(['cache', 'list', '--json', '--cache-dir', cache])).stdout) as Listing;
  assert.deepEqual(listing.entries, []);
});

test('cache clear keeps an entry a running process uses, and says so', async (t) => {
  const dir = await tempDir(t);
  const cache = join(dir, 'cache');
  const mar = await makeArchive(dir, 'held');
  const lease = await acquireExtraction(mar, { dir: cache });
  t.after(() => lease.release());
  const r = await server(['cache', 'clear', '--cache-dir', cache]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `removed 0 entries (0 B) from ${cache}; kept 1 in use by a running process\n`);
  const json = JSON.parse((await server(['cache', 'list', '--json', '--cache-dir', cache])).stdout) as Listing;
  assert.equal(json.entries[0]!.users, 1);
});

test('a bad MAR_CACHE_MAX_SIZE is a usage error', async (t) => {
  const dir = await tempDir(t);
  const mar = await makeArchive(dir, 'noop');
  const r = await server(['predict', mar, '--data', 'x', '--cache-dir', join(dir, 'cache')], { env: { MAR_CACHE_MAX_SIZE: 'lots' } });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^error: MAR_CACHE_MAX_SIZE="lots" is not a size \(20G, 512M\) or a percentage \(50%\)\n$/);
});

test('a cache directory that cannot be made: one line naming the setting to change', async (t) => {
  const dir = await tempDir(t);
  const mar = await makeArchive(dir, 'noop');
  const flag = await server(['predict', mar, '--data', 'x', '--cache-dir', mar]);
  assert.equal(flag.code, 1);
  assert.match(
    flag.stderr,
    /^error: cannot create the model cache .*noop\.mar: .*; give a writable directory \(--cache-dir, model_cache_dir\)\n$/,
  );
  const env = await server(['cache', 'list'], { env: { MAR_CACHE_DIR: join(mar, 'cache') } });
  assert.equal(env.code, 1);
  assert.match(env.stderr, /^error: cannot create the model cache .*; set MAR_CACHE_DIR to a writable directory\n$/);
});
