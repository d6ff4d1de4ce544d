import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { encodeEnd, encodeLocalHeader, METHOD_DEFLATED, METHOD_STORED, needsZip64, toDosDateTime } from '../../src/archive/zip-format.js';
import { ZipWriter } from '../../src/archive/zip-writer.js';
import { tempDir } from '../helpers/util.js';
import { checkZipEverywhere } from '../helpers/zip-checkers.js';

describe('zip format codec', () => {
  it('encodes DOS times in UTC and clamps dates before 1980', () => {
    const d = toDosDateTime(new Date(Date.UTC(2023, 10, 14, 22, 13, 21)));
    assert.equal(d.date, ((2023 - 1980) << 9) | (11 << 5) | 14);
    assert.equal(d.time, (22 << 11) | (13 << 5) | 10);
    assert.deepEqual(toDosDateTime(new Date(0)), { date: (1 << 5) | 1, time: 0 });
  });

  it('sets the UTF-8 flag only for non-ASCII names and never the data-descriptor bit', () => {
    const dos = toDosDateTime(new Date(0));
    const ascii = encodeLocalHeader({ name: 'a.txt', method: METHOD_STORED, dos, crc32: 1, size: 1, compressedSize: 1, zip64: false });
    const utf8 = encodeLocalHeader({ name: 'é.txt', method: METHOD_DEFLATED, dos, crc32: 1, size: 1, compressedSize: 1, zip64: false });
    assert.equal(ascii.readUInt16LE(6), 0);
    assert.equal(utf8.readUInt16LE(6), 0x800);
  });

  it('decides zip64 from the size including deflate growth, and writes a zip64 end record only when needed', () => {
    assert.equal(needsZip64(2 ** 32 - 2, METHOD_STORED), false);
    assert.equal(needsZip64(2 ** 32 - 1, METHOD_STORED), true);
    assert.equal(needsZip64(2 ** 32 - 100_000, METHOD_DEFLATED), true);
    assert.equal(encodeEnd({ entryCount: 65_534, centralDirectoryOffset: 10, centralDirectorySize: 10 }).length, 22);
    const big = encodeEnd({ entryCount: 65_535, centralDirectoryOffset: 10, centralDirectorySize: 10 });
    assert.equal(big.length, 56 + 20 + 22);
    assert.equal(big.readUInt32LE(0), 0x06064b50);
  });
});

describe('ZipWriter', () => {
  it('writes more than 65,535 entries with a zip64 end record that every reader accepts', async (t) => {
    const tmp = await tempDir(t);
    const file = join(tmp, 'many.mar');
    const w = await ZipWriter.create(file, { policy: 'store' });
    const mtime = new Date(Date.UTC(2024, 0, 1));
    const n = 70_000;
    for (let i = 0; i < n; i++) {
      await w.addBuffer({ archivePath: `d${i % 100}/f${i}.txt`, mtime, mode: 0o644 }, Buffer.from(String(i)));
    }
    await w.finish();
    const { python, java } = await checkZipEverywhere(file);
    assert.equal(python.count, n);
    assert.equal(java.length, n);
    assert.equal(java[n - 1]!.name, `d${(n - 1) % 100}/f${n - 1}.txt`);
  });

  it('refuses to create over an existing file (the temp path must be fresh)', async (t) => {
    const tmp = await tempDir(t);
    await writeFile(join(tmp, 'x.mar'), 'x');
    await assert.rejects(ZipWriter.create(join(tmp, 'x.mar'), { policy: 'auto' }), { code: 'OUTPUT_FAILED' });
  });
});
