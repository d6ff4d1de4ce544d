import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildReferenceArchives, suiteDir } from '../helpers/reference-archives.js';
import { archiver } from '../helpers/util.js';

const dir = await suiteDir();
const paths = await buildReferenceArchives(dir, ['torchserve', 'torchserve-tgz', 'bomb', 'dotdot']);

test('extract -o DIR: prints what it did; refuses an existing DIR without --force', async () => {
  const out = join(dir, 'ts');
  const r = await archiver(['extract', paths.torchserve, '-o', out]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^extracted 6 files \(16\.\d KiB\) to .*\/ts\n$/);
  assert.ok(existsSync(join(out, 'MAR-INF', 'MANIFEST.json')));
  const again = await archiver(['extract', paths.torchserve, '-o', out]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /^error: .*ts already exists and is not an empty directory; pass --force to replace it\n$/);
  const forced = await archiver(['extract', paths.torchserve, '-o', out, '--force', '--json']);
  assert.equal(forced.code, 0, forced.stderr);
  assert.deepEqual(Object.keys(JSON.parse(forced.stdout)).sort(), ['bytes', 'dir', 'entryCount']);
});

test('extract a tgz with --keep-root, and quietly', async () => {
  const out = join(dir, 'tgz');
  const r = await archiver(['extract', paths['torchserve-tgz'], '-o', out, '--keep-root', '-q']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, '');
  assert.ok(existsSync(join(out, 'ts_edge', 'MAR-INF', 'MANIFEST.json')));
});

test('zip bomb limits come with flags to raise them', async () => {
  const out = join(dir, 'bomb');
  const refused = await archiver(['extract', paths.bomb, '-o', out]);
  assert.equal(refused.code, 1);
  assert.match(
    refused.stderr,
    /inflates more than 200 times its size \(a zip bomb\?\); if you trust it, raise the limit with --max-ratio\n$/,
  );
  const small = await archiver(['extract', paths.bomb, '-o', out, '--max-ratio', '100000', '--max-size', '1M']);
  assert.equal(small.code, 1);
  assert.match(small.stderr, /--max-size/);
  const few = await archiver(['extract', paths.bomb, '-o', out, '--max-ratio', '100000', '--max-entries', '2']);
  assert.equal(few.code, 1);
  assert.match(few.stderr, /more than 2 entries; .*--max-entries/);
  const ok = await archiver(['extract', paths.bomb, '-o', out, '--max-ratio', '100000', '--max-size', '64M']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.ok(existsSync(join(out, 'zeros.bin')));
});

test('an escaping entry is refused and nothing is left behind', async () => {
  const before = (await readdir(dir)).sort();
  const r = await archiver(['extract', paths.dotdot, '-o', join(dir, 'evil')]);
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    /entry "\.\.\/\.\.\/evil\.txt" contains a "\.\." segment and would escape the target directory; refusing to extract it/,
  );
  assert.deepEqual((await readdir(dir)).sort(), before);
});

test('usage errors exit 2: missing -o, bad sizes and numbers', async () => {
  for (const args of [
    ['extract', paths.torchserve],
    ['extract', paths.torchserve, '-o', join(dir, 'x'), '--max-size', 'lots'],
    ['extract', paths.torchserve, '-o', join(dir, 'x'), '--max-ratio', '-1'],
    ['extract', paths.torchserve, '-o', join(dir, 'x'), '--max-entries', '1.5'],
  ]) {
    const r = await archiver(args);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.stderr, /^error: /);
  }
  assert.ok(!existsSync(join(dir, 'x')));
});

test('--help shows the real default limits', async () => {
  const { DEFAULT_EXTRACT_LIMITS } = await import('../../src/archive/extract.js');
  const { HELP_DEFAULTS } = await import('../../src/cli/commands/extract.js');
  assert.deepEqual({ ...HELP_DEFAULTS }, { ...DEFAULT_EXTRACT_LIMITS });
  const r = await archiver(['extract', '--help']);
  assert.equal(r.code, 0);
  const help = r.stdout.replace(/\s+/g, ' ');
  assert.match(help, /--max-size <size> largest total uncompressed size to accept \(default 64 GiB\)/);
  assert.match(help, /--max-ratio <n> largest inflated\/archive size ratio to accept \(default 200\)/);
  assert.match(help, /--max-entries <n> largest number of entries to accept \(default 100000\)/);
});
