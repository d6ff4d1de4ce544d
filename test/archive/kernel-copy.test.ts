/** Large stored entries copied inside the kernel by the Python helper (kernel-copy.ts), and the user-space fallback. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { extractArchive } from '../../src/archive/extract.js';
import { KERNEL_COPY_BYTES, type KernelCopier, kernelCopier, type RangeCopyResult } from '../../src/archive/kernel-copy.js';
import { createArchive } from '../../src/archive/pack.js';
import { DATA_ALIGNMENT } from '../../src/archive/zip-format.js';
import { MarError } from '../../src/errors.js';
import { run, tempDir } from '../helpers/util.js';
import { checkZipEverywhere } from '../helpers/zip-checkers.js';

/** A zip (Python's zipfile) with one stored entry large enough for the copier and a small one; prints the big one's data offset. */
const MAKE_ZIP = String.raw`
import sys, zipfile
out, src = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(out, "w") as z:
    z.writestr("handler.py", b"def handle(data, context):\n    return data\n", zipfile.ZIP_DEFLATED)
    z.write(src, "weights/model.bin", zipfile.ZIP_STORED)
with zipfile.ZipFile(out) as z, open(out, "rb") as f:
    info = z.getinfo("weights/model.bin")
    f.seek(info.header_offset + 26)
    n, m = int.from_bytes(f.read(2), "little"), int.from_bytes(f.read(2), "little")
    print(info.header_offset + 30 + n + m)
`;

async function makeZip(dir: string): Promise<{ zip: string; weights: Buffer; offset: number }> {
  const weights = randomBytes(KERNEL_COPY_BYTES + 12_345);
  await writeFile(join(dir, 'model.bin'), weights);
  const zip = join(dir, 'model.mar');
  const r = await run('python3', ['-c', MAKE_ZIP, zip, join(dir, 'model.bin')]);
  assert.equal(r.code, 0, r.stderr);
  return { zip, weights, offset: Number(r.stdout.trim()) };
}

/** The copier's answers, in order. */
function watch(copier: KernelCopier): RangeCopyResult[] {
  const results: RangeCopyResult[] = [];
  const copy = copier.copy.bind(copier);
  copier.copy = async (job) => {
    const r = await copy(job);
    results.push(r);
    return r;
  };
  return results;
}

test('a large stored entry is copied inside the kernel, its CRC-32 checked, and comes out identical', async (t) => {
  const dir = await tempDir(t);
  const { zip, weights } = await makeZip(dir);
  const copier = kernelCopier('python3')!;
  t.after(() => copier.close());
  const results = watch(copier);
  const out = join(dir, 'out');
  const r = await extractArchive(zip, out, { copier });
  assert.equal(r.entryCount, 2);
  assert.equal(results.length, 1);
  assert.ok('crc' in results[0]!, JSON.stringify(results[0]));
  assert.ok((await readFile(join(out, 'weights', 'model.bin'))).equals(weights));
  assert.match(await readFile(join(out, 'handler.py'), 'utf8'), /def handle/);
});

test('a flipped byte in a kernel-copied entry fails its CRC-32 and leaves nothing behind', async (t) => {
  const dir = await tempDir(t);
  const { zip, offset } = await makeZip(dir);
  const data = await readFile(zip);
  data[offset + KERNEL_COPY_BYTES - 3]! ^= 0x01;
  await writeFile(zip, data);
  const copier = kernelCopier('python3')!;
  t.after(() => copier.close());
  const results = watch(copier);
  const out = join(dir, 'out');
  await assert.rejects(
    extractArchive(zip, out, { copier }),
    (e: unknown) =>
      e instanceof MarError &&
      e.code === 'ARCHIVE_CORRUPT' &&
      /entry weights\/model\.bin CRC-32 is [0-9a-f]{8} but the archive records/.test(e.message),
  );
  assert.ok('crc' in results[0]!, 'the kernel copy ran and the check refused its result');
  assert.ok(!existsSync(out));
  assert.deepEqual((await readdir(dir)).sort(), ['model.bin', 'model.mar']);
});

test('without a Python to run the helper, the entry is copied in user space instead (same bytes)', async (t) => {
  const dir = await tempDir(t);
  const { zip, weights } = await makeZip(dir);
  const copier = kernelCopier(join(dir, 'no-such-python'))!;
  t.after(() => copier.close());
  const results = watch(copier);
  const out = join(dir, 'out');
  await extractArchive(zip, out, { copier });
  assert.match(('unsupported' in results[0]! && results[0].unsupported) || '', /cannot run .*no-such-python/);
  assert.ok((await readFile(join(out, 'weights', 'model.bin'))).equals(weights));
});

test('MAR_KERNEL_COPY=0 or no Python: no copier', () => {
  assert.equal(kernelCopier('python3', { MAR_KERNEL_COPY: '0' }), null);
  assert.equal(kernelCopier(null, {}), null);
  assert.ok(kernelCopier('python3', {}) !== null);
});

/** Every entry's data offset, by name (Python's zipfile and the local headers). */
const DATA_OFFSETS = `
import json, sys, zipfile
out = {}
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[1], "rb") as f:
    for info in z.infolist():
        f.seek(info.header_offset + 26)
        n, m = int.from_bytes(f.read(2), "little"), int.from_bytes(f.read(2), "little")
        out[info.filename] = [info.header_offset + 30 + n + m, info.compress_type]
print(json.dumps(out))
`;

test('archives we write start a large stored entry at a page boundary; every reader still reads them', async (t) => {
  const dir = await tempDir(t);
  const src = join(dir, 'model');
  const weights = randomBytes(KERNEL_COPY_BYTES + 777);
  await mkdir(src, { recursive: true });
  await writeFile(join(src, 'handler.py'), 'def handle(data, context):\n    return data\n');
  await writeFile(join(src, 'weights.bin'), weights);
  await writeFile(join(src, 'small.bin'), randomBytes(5000));
  await createArchive({ modelName: 'm', handler: 'handler:handle', modelPath: src, exportPath: dir });
  const zip = join(dir, 'm.mar');
  const r = await run('python3', ['-c', DATA_OFFSETS, zip]);
  assert.equal(r.code, 0, r.stderr);
  const offsets = JSON.parse(r.stdout) as Record<string, [number, number]>;
  assert.deepEqual(offsets['weights.bin'], [offsets['weights.bin']![0], 0], 'random weights are stored');
  assert.equal(offsets['weights.bin']![0] % DATA_ALIGNMENT, 0, `data of weights.bin at ${offsets['weights.bin']![0]}`);
  // Java's ZipInputStream (MMS's and TorchServe's readers), Python's zipfile and unzip -t
  await checkZipEverywhere(zip);
  const copier = kernelCopier('python3')!;
  t.after(() => copier.close());
  const results = watch(copier);
  await extractArchive(zip, join(dir, 'out'), { copier });
  assert.ok('crc' in results[0]!);
  assert.ok((await readFile(join(dir, 'out', 'weights.bin'))).equals(weights));
});
