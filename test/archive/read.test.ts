import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { create as createTar } from 'tar';
import { ArchiveReader, decodeZipName, detectArchiveKind, findTgzRoot, torchServeTarPath } from '../../src/archive/read.js';
import { checkEntryPath, resolveInside } from '../../src/archive/safe-path.js';
import { MarError } from '../../src/errors.js';
import { buildReferenceArchives, suiteDir } from '../helpers/reference-archives.js';

const dir = await suiteDir();
const paths = await buildReferenceArchives(dir, ['torchserve', 'torchserve-tgz', 'bad-crc', 'stored-dd', 'cp437', 'not-an-archive']);

const isCode = (code: string) => (e: unknown) => e instanceof MarError && e.code === code;

test('the format comes from magic bytes, not the file extension', async () => {
  const zipNamedTgz = join(dir, 'really-a-zip.tar.gz');
  const tgzNamedMar = join(dir, 'really-a-tgz.mar');
  await copyFile(paths.torchserve, zipNamedTgz);
  await copyFile(paths['torchserve-tgz'], tgzNamedMar);
  assert.equal(await detectArchiveKind(zipNamedTgz), 'zip');
  assert.equal(await detectArchiveKind(tgzNamedMar), 'tgz');
  assert.equal(await detectArchiveKind(dir), 'dir');
  await assert.rejects(detectArchiveKind(paths['not-an-archive']), isCode('ARCHIVE_UNSUPPORTED'));
  await assert.rejects(detectArchiveKind(join(dir, 'missing.mar')), isCode('INPUT_NOT_FOUND'));
  const empty = join(dir, 'empty.mar');
  await writeFile(empty, '');
  await assert.rejects(detectArchiveKind(empty), isCode('ARCHIVE_CORRUPT'));
});

test('zip entries come from the central directory with the flags the Java reader cares about', async () => {
  const r = await ArchiveReader.open(paths['stored-dd']);
  try {
    const e = r.entries().find((x) => x.path === 'weights.bin')!;
    assert.equal(e.method, 'stored');
    assert.equal(e.hasDataDescriptor, true);
    assert.equal(e.size, 16384);
    const local = await r.readLocalHeader(e);
    assert.equal(local.flags & 0x8, 0x8);
    assert.equal(local.size, 0, 'a data descriptor entry records no size in its local header');
    // Reading still works: the central directory has the sizes.
    assert.equal((await r.readEntry(e)).length, 16384);
  } finally {
    await r.close();
  }
});

test('entry data is CRC-checked while streaming', async () => {
  const r = await ArchiveReader.open(paths['bad-crc']);
  try {
    assert.equal((await r.readEntry('model_handler.py')).toString('utf8').includes('def handle'), true);
    await assert.rejects(r.readEntry('weights.bin'), (e: unknown) => isCode('ARCHIVE_CORRUPT')(e) && /CRC-32/.test((e as Error).message));
  } finally {
    await r.close();
  }
});

test('names: UTF-8 when valid, CP437 for display otherwise', async () => {
  assert.deepEqual(decodeZipName(Buffer.from('caf\u00e9.txt')), { name: 'caf\u00e9.txt', validUtf8: true });
  assert.deepEqual(decodeZipName(Buffer.from([0x63, 0x61, 0x66, 0x82])), { name: 'caf\u00e9', validUtf8: false });
  const r = await ArchiveReader.open(paths.cp437);
  try {
    const e = r.entries().find((x) => !x.nameValidUtf8)!;
    assert.equal(e.path, 'caf\u00e9.txt');
    assert.deepEqual(e.rawName, Buffer.from('caf\x82.txt', 'latin1'));
  } finally {
    await r.close();
  }
});

test('tgz root detection follows the archivers: one <name>/ root, ./ prefixes ignored', () => {
  assert.equal(findTgzRoot(['m/', 'm/MAR-INF/MANIFEST.json', 'm/h.py']), 'm');
  assert.equal(findTgzRoot(['m/MAR-INF/MANIFEST.json', 'm/h.py']), 'm');
  assert.equal(findTgzRoot(['./m/h.py', './m/MAR-INF/MANIFEST.json']), 'm');
  assert.equal(findTgzRoot(['MAR-INF/MANIFEST.json', 'h.py']), null);
  assert.equal(findTgzRoot(['./', './MAR-INF/MANIFEST.json', './h.py']), null);
  assert.equal(findTgzRoot(['a/x', 'b/y']), null);
  assert.equal(findTgzRoot(['m']), null);
  assert.equal(torchServeTarPath('m/MAR-INF/MANIFEST.json'), 'MAR-INF/MANIFEST.json');
  assert.equal(torchServeTarPath('MAR-INF/MANIFEST.json'), 'MANIFEST.json');
  assert.equal(torchServeTarPath('h.py'), 'h.py');
});

test('tgz: large members are streamed by a second scan, small ones served from the listing pass', async () => {
  const src = join(dir, 'tgz-src');
  await mkdir(join(src, 'm', 'MAR-INF'), { recursive: true });
  const big = randomBytes(3 << 20);
  await writeFile(join(src, 'm', 'big.bin'), big);
  await writeFile(join(src, 'm', 'MAR-INF', 'MANIFEST.json'), '{"runtime":"python","model":{"modelName":"m","handler":"h"}}');
  const file = join(dir, 'big.tar.gz');
  await createTar({ gzip: true, file, cwd: src, portable: true }, ['m']);
  const r = await ArchiveReader.open(file);
  try {
    assert.equal(r.tgzRoot, 'm');
    assert.equal(r.find('big.bin')!.size, big.length);
    assert.ok((await r.readEntry('big.bin')).equals(big));
    let seen = 0;
    await r.walk(async (e, s) => {
      if (!s) return;
      for await (const c of s) seen += (c as Buffer).length;
      assert.ok(e.path === 'big.bin' || e.path === 'MAR-INF/MANIFEST.json');
    });
    assert.equal(seen, big.length + r.find('MAR-INF/MANIFEST.json')!.size);
    await assert.rejects(r.readEntry('big.bin', 1024), isCode('ARCHIVE_LIMIT'));
  } finally {
    await r.close();
  }
});

test('entry names that would escape a directory are recognised in every spelling', () => {
  assert.equal(checkEntryPath('a/b.txt').unsafe, undefined);
  assert.equal(checkEntryPath('./a/./b.txt').unsafe, undefined);
  assert.equal(checkEntryPath('a..b/c..').unsafe, undefined);
  assert.equal(checkEntryPath('../x').unsafe, 'parent-segment');
  assert.equal(checkEntryPath('a/../../x').unsafe, 'parent-segment');
  assert.equal(checkEntryPath('a\\..\\..\\x').unsafe, 'parent-segment');
  assert.equal(checkEntryPath('/etc/passwd').unsafe, 'absolute');
  assert.equal(checkEntryPath('\\\\server\\share').unsafe, 'absolute');
  assert.equal(checkEntryPath('C:/Windows/x').unsafe, 'drive-letter');
  assert.equal(checkEntryPath('c:x').unsafe, 'drive-letter');
  assert.equal(checkEntryPath('a\0b').unsafe, 'nul-byte');
  assert.equal(resolveInside('/base', ['a', 'b']), '/base/a/b');
  assert.equal(resolveInside('/base', ['..', 'x']), undefined);
  assert.equal(resolveInside('/base', []), undefined);
});
