import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { extractArchive } from '../../src/archive/extract.js';
import { type ErrorCode, MarError } from '../../src/errors.js';
import { BOMB_BYTES, buildReferenceArchives, suiteDir } from '../helpers/reference-archives.js';

const dir = await suiteDir();
const paths = await buildReferenceArchives(dir, [
  'mms',
  'torchserve',
  'torchserve-tgz',
  'tgz-dot',
  'tgz-no-root',
  'unpacked',
  'backslash',
  'dotdot',
  'absolute',
  'symlink',
  'cp437',
  'duplicate',
  'bad-crc',
  'lying-size',
  'truncated',
  'truncated-tgz',
  'tgz-dotdot',
  'tgz-absolute',
  'tgz-symlink',
  'tgz-hardlink',
  'bomb',
  'tgz-bomb',
]);

let n = 0;
/** A fresh parent dir per case, so "nothing left behind" can be checked by listing it. */
async function workDir(): Promise<string> {
  const d = join(dir, `work-${n++}`, 'nested');
  await mkdir(d, { recursive: true });
  return d;
}

function isCode(code: ErrorCode, pattern?: RegExp) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof MarError, String(e));
    assert.equal(e.code, code, e.message);
    if (pattern) assert.match(e.message, pattern);
    assert.ok(!e.message.includes('\n'));
    return true;
  };
}

test('extracts a TorchServe .mar with identical content and reports files and bytes', async () => {
  const work = await workDir();
  const out = join(work, 'model');
  const r = await extractArchive(paths.torchserve, out);
  assert.equal(r.dir, resolve(out));
  assert.equal(r.entryCount, 6);
  const files = (await readdir(out, { recursive: true })).map((f) => join(out, f));
  let total = 0;
  for (const f of files) {
    const st = await stat(f);
    if (st.isFile()) total += st.size;
  }
  assert.equal(r.bytes, total);
  const manifest = JSON.parse(await readFile(join(out, 'MAR-INF', 'MANIFEST.json'), 'utf8'));
  assert.equal(manifest.model.modelName, 'ts_edge');
  const weights = await readFile(join(out, 'model.pt'));
  assert.equal(weights.length, 16384);
  assert.equal(weights[257], 1);
  assert.deepEqual(await readdir(work), ['model'], 'no temp dir left beside the target');
});

test('tgz: the single <model-name>/ root is dropped (as TorchServe does) unless stripTgzRoot is false', async () => {
  const work = await workDir();
  await extractArchive(paths['torchserve-tgz'], join(work, 'a'));
  assert.ok(existsSync(join(work, 'a', 'MAR-INF', 'MANIFEST.json')));
  await extractArchive(paths['torchserve-tgz'], join(work, 'b'), { stripTgzRoot: false });
  assert.ok(existsSync(join(work, 'b', 'ts_edge', 'MAR-INF', 'MANIFEST.json')));
  // ./-prefixed and rootless tars keep their layout: nothing to strip.
  await extractArchive(paths['tgz-dot'], join(work, 'c'));
  assert.ok(existsSync(join(work, 'c', 'MAR-INF', 'MANIFEST.json')));
  await extractArchive(paths['tgz-no-root'], join(work, 'd'));
  assert.ok(existsSync(join(work, 'd', 'MAR-INF', 'MANIFEST.json')));
  assert.deepEqual((await readdir(work)).sort(), ['a', 'b', 'c', 'd']);
});

test('extracts an unpacked model directory (a copy)', async () => {
  const work = await workDir();
  const r = await extractArchive(paths.unpacked, join(work, 'copy'));
  assert.equal(r.entryCount, 6);
  assert.ok(existsSync(join(work, 'copy', 'MAR-INF', 'MANIFEST.json')));
});

const HOSTILE: [keyof typeof paths, ErrorCode, RegExp][] = [
  ['dotdot', 'ARCHIVE_UNSAFE', /"\.\.\/\.\.\/evil\.txt" contains a "\.\." segment/],
  ['absolute', 'ARCHIVE_UNSAFE', /"\/tmp\/evil\.txt" is an absolute path/],
  ['symlink', 'ARCHIVE_UNSAFE', /symbolic link/],
  ['cp437', 'ARCHIVE_UNSUPPORTED', /not valid UTF-8/],
  ['duplicate', 'ARCHIVE_UNSAFE', /appears more than once/],
  ['bad-crc', 'ARCHIVE_CORRUPT', /weights\.bin CRC-32 is [0-9a-f]{8} but the archive records/],
  ['lying-size', 'ARCHIVE_CORRUPT', /inflates to more than the recorded 1024 bytes/],
  ['truncated', 'ARCHIVE_CORRUPT', /truncated/],
  ['truncated-tgz', 'ARCHIVE_CORRUPT', /truncated/],
  ['tgz-dotdot', 'ARCHIVE_UNSAFE', /contains a "\.\." segment/],
  ['tgz-absolute', 'ARCHIVE_UNSAFE', /is an absolute path/],
  ['tgz-symlink', 'ARCHIVE_UNSAFE', /symbolic link to "\/etc\/passwd"/],
  ['tgz-hardlink', 'ARCHIVE_UNSAFE', /hard link to "\/etc\/shadow"/],
  ['bomb', 'ARCHIVE_LIMIT', /--max-ratio/],
  ['tgz-bomb', 'ARCHIVE_LIMIT', /inflates more than 200 times its size.*--max-ratio/],
];

for (const [shape, code, pattern] of HOSTILE) {
  test(`extract refuses a ${shape} archive and leaves nothing behind`, async () => {
    const work = await workDir();
    const out = join(work, 'out');
    await assert.rejects(extractArchive(paths[shape], out), isCode(code, pattern));
    assert.deepEqual(await readdir(work), [], 'no target, no temp dir');
    assert.ok(!existsSync(resolve(out, '../../evil.txt')));
    assert.ok(!existsSync(resolve(out, '../evil.txt')));
  });
}

test('backslashes in names are treated as separators, inside the target', async () => {
  const work = await workDir();
  await extractArchive(paths.backslash, join(work, 'out'));
  assert.ok(existsSync(join(work, 'out', 'MAR-INF', 'MANIFEST.json')));
});

test('zip bomb limits: ratio, total size and entry count, each with the flag that raises it', async () => {
  const work = await workDir();
  // The bomb passes once the ratio limit is raised; its actual inflated bytes are counted.
  const ok = await extractArchive(paths.bomb, join(work, 'bomb'), { limits: { maxRatio: 100_000 } });
  assert.ok(ok.bytes > BOMB_BYTES);
  await assert.rejects(
    extractArchive(paths.bomb, join(work, 'small'), { limits: { maxRatio: 100_000, maxTotalBytes: 1 << 20 } }),
    isCode('ARCHIVE_LIMIT', /--max-size/),
  );
  await assert.rejects(
    extractArchive(paths.torchserve, join(work, 'few'), { limits: { maxEntries: 3 } }),
    isCode('ARCHIVE_LIMIT', /--max-entries/),
  );
  // tgz: the limit is applied to the bytes actually inflated.
  await assert.rejects(
    extractArchive(paths['torchserve-tgz'], join(work, 'tgz'), { limits: { maxTotalBytes: 4096 } }),
    isCode('ARCHIVE_LIMIT', /--max-size/),
  );
  await assert.rejects(
    extractArchive(paths['torchserve-tgz'], join(work, 'tgz'), { limits: { maxEntries: 2 } }),
    isCode('ARCHIVE_LIMIT', /--max-entries/),
  );
  assert.deepEqual(await readdir(work), ['bomb']);
});

test('the target must not exist or be empty; --force replaces it atomically', async () => {
  const work = await workDir();
  const out = join(work, 'out');
  await mkdir(out);
  await extractArchive(paths.mms, out); // empty dir is fine
  assert.ok(existsSync(join(out, 'model_handler.py')));
  await assert.rejects(extractArchive(paths.torchserve, out), isCode('OUTPUT_EXISTS', /--force/));
  await writeFile(join(out, 'stale.txt'), 'old');
  await extractArchive(paths.torchserve, out, { force: true });
  assert.ok(existsSync(join(out, 'my_handler.py')));
  assert.ok(!existsSync(join(out, 'stale.txt')), 'no stale files after --force');
  // A failing forced extraction leaves the old content untouched.
  await assert.rejects(extractArchive(paths['bad-crc'], out, { force: true }), isCode('ARCHIVE_CORRUPT'));
  assert.ok(existsSync(join(out, 'my_handler.py')));
  assert.deepEqual(await readdir(work), ['out']);
});

test('extracting a directory onto or into itself is refused', async () => {
  await assert.rejects(extractArchive(paths.unpacked, paths.unpacked, { force: true }), isCode('USAGE'));
  await assert.rejects(extractArchive(paths.unpacked, join(paths.unpacked, 'copy')), isCode('USAGE'));
  assert.ok(existsSync(join(paths.unpacked, 'MAR-INF', 'MANIFEST.json')));
  assert.ok(!existsSync(join(paths.unpacked, 'copy')));
});

test('a large model directory is copied without tripping the compression-ratio limit', async () => {
  const work = await workDir();
  const src = join(work, 'src');
  await mkdir(src);
  await writeFile(join(src, 'zeros.bin'), Buffer.alloc(3 << 20));
  const r = await extractArchive(src, join(work, 'copy'));
  assert.equal(r.bytes, 3 << 20);
});

test('parent directories created for the target are removed again when extraction fails', async () => {
  const work = await workDir();
  await assert.rejects(extractArchive(paths.dotdot, join(work, 'a', 'b', 'out')), isCode('ARCHIVE_UNSAFE'));
  assert.deepEqual(await readdir(work), []);
  await extractArchive(paths.mms, join(work, 'a', 'b', 'out'));
  assert.ok(existsSync(join(work, 'a', 'b', 'out', 'model_handler.py')));
});

test('--force never deletes the archive being read, the current directory or a file in the way', async () => {
  const work = await workDir();
  // A model store holding the archive and other models: replacing it would delete them all.
  const store = join(work, 'store');
  await mkdir(store);
  const inStore = join(store, 'model.mar');
  await writeFile(inStore, await readFile(paths.torchserve));
  await writeFile(join(store, 'other.mar'), 'other model');
  await assert.rejects(extractArchive(inStore, store, { force: true }), isCode('USAGE', /inside .*--force would delete/));
  assert.deepEqual((await readdir(store)).sort(), ['model.mar', 'other.mar']);
  // The current directory (or one of its ancestors).
  const cwd = process.cwd();
  const here = join(work, 'here');
  await mkdir(join(here, 'deeper'), { recursive: true });
  process.chdir(join(here, 'deeper'));
  try {
    await assert.rejects(extractArchive(paths.torchserve, here, { force: true }), isCode('USAGE', /current directory/));
  } finally {
    process.chdir(cwd);
  }
  assert.ok(existsSync(join(here, 'deeper')));
  // A file is not an output directory, with or without --force.
  const weights = join(work, 'model.pt');
  await writeFile(weights, 'weights');
  for (const force of [false, true]) {
    await assert.rejects(extractArchive(paths.torchserve, weights, { force }), isCode('OUTPUT_EXISTS', /not a directory/));
  }
  assert.equal(await readFile(weights, 'utf8'), 'weights');
  assert.deepEqual((await readdir(work)).sort(), ['here', 'model.pt', 'store']);
});
