/**
 * zip64 entries over 4 GiB (slow: each test streams 4 GiB through deflate or to disk, 20-30 s apiece on two cores).
 * Run by `npm run test:slow` and by CI, not by `npm test`; the zip64 end record (> 65,535 entries) and the codec's
 * zip64 decisions stay in zip-writer.test.ts.
 */
import assert from 'node:assert/strict';
import { open, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createArchive } from '../../src/archive/pack.js';
import { run, tempDir } from '../helpers/util.js';
import { javaZipCheck } from '../helpers/zip-checkers.js';
import { HANDLER_PY, writeFiles } from './fixture-model.js';

/**
 * Structure-only view through Python's zipfile (central directory, zip64 records, local headers) plus a read of
 * the last bytes of one entry; the full read of every byte is left to ZipInputStream, to keep these tests fast.
 */
const PY_BIG = `
import json, struct, sys, zipfile
path, name, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
with zipfile.ZipFile(path) as z:
    out = []
    with open(path, 'rb') as f:
        for i in z.infolist():
            f.seek(i.header_offset)
            sig, ver, flags, method = struct.unpack('<IHHH', f.read(10))
            out.append([i.filename, i.file_size, i.header_offset, flags, method])
    tail = None
    info = z.getinfo(name)
    if info.compress_type == 0:
        with z.open(name) as e:
            e.seek(size - 4)
            tail = e.read(4).decode()
print(json.dumps({'entries': out, 'tail': tail}))
`;

async function sparseModel(tmp: string, size: number): Promise<string> {
  const model = join(tmp, 'model');
  await writeFiles(model, { 'handler.py': HANDLER_PY, 'zz-after.txt': 'after the big entry\n' });
  const big = join(model, 'big.bin');
  await writeFile(big, '');
  await truncate(big, size);
  // A marker at the end proves the whole file went through, not just zeros.
  const fh = await open(big, 'r+');
  await fh.write(Buffer.from('END!'), 0, 4, size - 4);
  await fh.close();
  return model;
}

describe('zip64 entries (sparse files over 4 GiB)', () => {
  const SIZE = 2 ** 32 + 2 ** 20; // 4 GiB + 1 MiB, sparse: costs no disk and reads as zeros

  it('default format: a > 4 GiB zero-filled file is deflated with zip64 sizes; ZipInputStream reads it whole', async (t) => {
    const tmp = await tempDir(t);
    const model = await sparseModel(tmp, SIZE);
    const r = await createArchive({ modelName: 'big', handler: 'handler:handle', modelPath: model, exportPath: tmp });
    t.diagnostic(`created a ${SIZE} B entry in ${Math.round(r.durationMs)} ms -> ${r.bytes} B archive`);
    const bigEntry = r.entries.find((e) => e.archivePath === 'big.bin')!;
    assert.equal(bigEntry.method, 'deflated');
    assert.equal(bigEntry.size, SIZE);
    assert.ok(r.bytes < 64 << 20, 'zeros compress');
    const [java, py] = await Promise.all([javaZipCheck([r.path]), run('python3', ['-c', PY_BIG, r.path, 'big.bin', String(SIZE)])]);
    assert.deepEqual(
      java
        .get(r.path)!
        .map((e) => [e.name, e.size])
        .slice(0, 3),
      [
        ['big.bin', SIZE],
        ['handler.py', HANDLER_PY.length],
        ['zz-after.txt', 20],
      ],
    );
    assert.equal(py.code, 0, py.stderr);
    const entries = (JSON.parse(py.stdout) as { entries: [string, number, number, number, number][] }).entries;
    assert.deepEqual(entries[0]!.slice(0, 2), ['big.bin', SIZE]);
    assert.ok(
      entries.every((e) => (e[3] & 8) === 0),
      'no data descriptors',
    );
    const list = await run('unzip', ['-l', r.path]);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, new RegExp(`${SIZE}\\s+\\S+\\s+\\S+\\s+big\\.bin`));
  });

  it('zip-store: a > 4 GiB stored entry followed by others (offsets past 4 GiB) reads back in Java, Python and unzip', async (t) => {
    const tmp = await tempDir(t);
    const model = await sparseModel(tmp, SIZE);
    const r = await createArchive({
      modelName: 'big',
      handler: 'handler:handle',
      modelPath: model,
      exportPath: tmp,
      archiveFormat: 'zip-store',
    });
    assert.ok((await stat(r.path)).size > SIZE);
    const [java, py, after] = await Promise.all([
      javaZipCheck([r.path]),
      run('python3', ['-c', PY_BIG, r.path, 'big.bin', String(SIZE)]),
      run('unzip', ['-p', r.path, 'zz-after.txt']),
    ]);
    const names = ['big.bin', 'handler.py', 'zz-after.txt', 'MAR-INF/FILES.sha256', 'MAR-INF/MANIFEST.json'];
    assert.deepEqual(
      java.get(r.path)!.map((e) => e.name),
      names,
    );
    assert.equal(java.get(r.path)![0]!.size, SIZE);
    assert.equal(py.code, 0, py.stderr);
    const report = JSON.parse(py.stdout) as { entries: [string, number, number, number, number][]; tail: string };
    assert.equal(report.tail, 'END!');
    assert.ok(report.entries[1]![2] > 2 ** 32, 'later entries sit past 4 GiB (zip64 offsets)');
    assert.ok(
      report.entries.every((e) => e[3] === 0 && e[4] === 0),
      'stored, no flags',
    );
    assert.equal(after.code, 0, after.stderr);
    assert.equal(after.stdout, 'after the big entry\n');
    assert.equal(await readFile(join(model, 'zz-after.txt'), 'utf8'), after.stdout);
  });
});
