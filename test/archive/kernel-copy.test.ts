/** Large stored entries copied inside the kernel by the Python helper (kernel-copy.ts), and the user-space fallback. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { extractArchive } from '../../src/archive/extract.js';
import { type KernelCopier, kernelCopier, type RangeCopyResult } from '../../src/archive/kernel-copy.js';
import { KERNEL_COPY_BYTES } from '../../src/archive/zip-extract.js';
import { MarError } from '../../src/errors.js';
import { run, tempDir } from '../helpers/util.js';

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
