/** The parallel zip writer behind extractArchive: chunked stored entries, streamed deflated ones, and their checks. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { crc32 } from 'node:zlib';
import { Crc32Combiner } from '../../src/archive/crc32-combine.js';
import { extractArchive } from '../../src/archive/extract.js';
import { CHUNK_BYTES, WORKERS } from '../../src/archive/extract-slots.js';
import { ArchiveReader } from '../../src/archive/read.js';
import { writeZipFiles } from '../../src/archive/zip-extract.js';
import { MarError } from '../../src/errors.js';
import { run, tempDir } from '../helpers/util.js';

test('CRC-32 of a concatenation from the parts, for any lengths', () => {
  const c = new Crc32Combiner();
  for (const [a, b] of [
    [0, 0],
    [0, 7],
    [7, 0],
    [1, 1],
    [3, 1000],
    [CHUNK_BYTES, CHUNK_BYTES],
    [CHUNK_BYTES, 12345],
    [65_537, 1 << 20],
  ] as const) {
    const A = randomBytes(a);
    const B = randomBytes(b);
    assert.equal(c.combine(crc32(A), crc32(B), b), crc32(Buffer.concat([A, B])), `${a} + ${b}`);
  }
  const parts = [randomBytes(10), randomBytes(CHUNK_BYTES), randomBytes(CHUNK_BYTES), randomBytes(99)];
  assert.equal(c.combineAll(parts.map((p) => [crc32(p), p.length])), crc32(Buffer.concat(parts)));
});

/**
 * A zip written by Python's zipfile with a stored entry of several chunks, a deflated entry larger than one chunk
 * (streamed), an empty file and 300 small files in 10 directories. Prints each entry's data offset.
 */
const MAKE_ZIP = String.raw`
import json, os, sys, zipfile
out, src = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(out, "w") as z:
    z.write(os.path.join(src, "big.bin"), "weights/big.bin", zipfile.ZIP_STORED)
    z.write(os.path.join(src, "text.bin"), "weights/text.bin", zipfile.ZIP_DEFLATED)
    z.writestr("empty.txt", b"", zipfile.ZIP_STORED)
    for i in range(300):
        z.writestr("small/d%d/f%d.txt" % (i % 10, i), ("line %d\n" % i) * (i % 50), zipfile.ZIP_DEFLATED if i % 2 else zipfile.ZIP_STORED)
offsets = {}
with zipfile.ZipFile(out) as z, open(out, "rb") as f:
    for info in z.infolist():
        f.seek(info.header_offset + 26)
        n, m = int.from_bytes(f.read(2), "little"), int.from_bytes(f.read(2), "little")
        offsets[info.filename] = info.header_offset + 30 + n + m
print(json.dumps(offsets))
`;

async function makeZip(dir: string): Promise<{ zip: string; big: Buffer; text: Buffer; offsets: Record<string, number> }> {
  const src = join(dir, 'src');
  await mkdir(src, { recursive: true });
  const big = randomBytes(2 * CHUNK_BYTES + 12_345);
  const lines: string[] = [];
  for (let i = 0; lines.length < 200_000; i++) lines.push(`tensor ${i} ${(i * 0.37).toFixed(3)} ${i % 97}`);
  const text = Buffer.from(lines.join('\n'));
  assert.ok(text.length > CHUNK_BYTES, 'the deflated entry must be larger than one chunk');
  await writeFile(join(src, 'big.bin'), big);
  await writeFile(join(src, 'text.bin'), text);
  const zip = join(dir, 'model.mar');
  const r = await run('python3', ['-c', MAKE_ZIP, zip, src]);
  assert.equal(r.code, 0, r.stderr);
  return { zip, big, text, offsets: JSON.parse(r.stdout) };
}

test('stored entries of several chunks, streamed deflated entries and many small files come out identical', async (t) => {
  const dir = await tempDir(t);
  const { zip, big, text } = await makeZip(dir);
  const out = join(dir, 'out');
  const r = await extractArchive(zip, out);
  assert.equal(r.entryCount, 303);
  assert.ok((await readFile(join(out, 'weights', 'big.bin'))).equals(big));
  assert.ok((await readFile(join(out, 'weights', 'text.bin'))).equals(text));
  assert.equal((await readFile(join(out, 'empty.txt'))).length, 0);
  assert.equal(await readFile(join(out, 'small', 'd7', 'f157.txt'), 'utf8'), 'line 157\n'.repeat(157 % 50));
  assert.equal((await readdir(join(out, 'small'))).length, 10);
});

async function corrupt(path: string, offset: number): Promise<void> {
  const data = await readFile(path);
  data[offset]! ^= 0xff;
  await writeFile(path, data);
}

/** The one-line error of an entry whose bytes do not match the CRC-32 its archive records. */
const crcMismatch =
  (name: string) =>
  (e: unknown): boolean =>
    e instanceof MarError &&
    e.code === 'ARCHIVE_CORRUPT' &&
    new RegExp(`entry ${name.replace(/[./]/g, '\\$&')} CRC-32 is [0-9a-f]{8} but the archive records`).test(e.message);

test('a flipped byte in the middle chunk of a stored entry fails its CRC and leaves nothing behind', async (t) => {
  const dir = await tempDir(t);
  const { zip, offsets } = await makeZip(dir);
  await corrupt(zip, offsets['weights/big.bin']! + CHUNK_BYTES + 77);
  const out = join(dir, 'out');
  await assert.rejects(extractArchive(zip, out), crcMismatch('weights/big.bin'));
  assert.ok(!existsSync(out));
  assert.deepEqual((await readdir(dir)).sort(), ['model.mar', 'src']);
});

test('a corrupt deflated entry larger than one chunk is refused as it streams', async (t) => {
  const dir = await tempDir(t);
  const { zip, offsets } = await makeZip(dir);
  await corrupt(zip, offsets['weights/text.bin']! + 1000);
  await assert.rejects(
    extractArchive(zip, join(dir, 'out')),
    (e: unknown) => e instanceof MarError && e.code === 'ARCHIVE_CORRUPT' && /weights\/text\.bin/.test(e.message),
  );
  assert.deepEqual((await readdir(dir)).sort(), ['model.mar', 'src']);
});

/** Replaces every occurrence of `crc` (little-endian, as in the local header and the central directory) with crc ^ 1. */
async function misrecordCrc(path: string, crc: number): Promise<void> {
  const data = await readFile(path);
  const le = Buffer.alloc(4);
  le.writeUInt32LE(crc);
  let found = 0;
  for (let i = data.indexOf(le); i >= 0; i = data.indexOf(le, i + 4), found++) data.writeUInt32LE((crc ^ 1) >>> 0, i);
  assert.equal(found, 2, 'the CRC-32 is recorded in the local header and the central directory');
  await writeFile(path, data);
}

test('deflated entries that inflate cleanly but differ from their recorded CRC-32 are refused, streamed or whole', async (t) => {
  const dir = await tempDir(t);
  const { zip, text } = await makeZip(dir);
  // small/d1/f1.txt (odd: deflated) is inflated in one call; weights/text.bin (over one chunk) streams
  for (const [name, content] of [
    ['small/d1/f1.txt', Buffer.from('line 1\n')],
    ['weights/text.bin', text],
  ] as const) {
    const copy = join(dir, `${name.replace(/\//g, '_')}.mar`);
    await writeFile(copy, await readFile(zip));
    await misrecordCrc(copy, crc32(content));
    const out = join(dir, 'out');
    await assert.rejects(extractArchive(copy, out), crcMismatch(name), name);
    assert.ok(!existsSync(out), name);
  }
});

test('two extractions in one process: the one that started first has the slots until its last task', async (t) => {
  const dir = await tempDir(t);
  const chunks = 4 * WORKERS;
  await writeFile(join(dir, 'big.bin'), randomBytes((chunks - 1) * CHUNK_BYTES + 1));
  const zip = join(dir, 'big.zip');
  const make = 'import sys, zipfile\nzipfile.ZipFile(sys.argv[1], "w").write(sys.argv[2], "big.bin", zipfile.ZIP_STORED)';
  const r = await run('python3', ['-c', make, zip, join(dir, 'big.bin')]);
  assert.equal(r.code, 0, r.stderr);
  const a = await ArchiveReader.open(zip);
  const b = await ArchiveReader.open(zip);
  t.after(async () => {
    await a.close();
    await b.close();
  });
  const target = async (reader: ArchiveReader, name: string) => {
    await mkdir(join(dir, name));
    return [{ entry: reader.entries()[0]!, target: join(dir, name, 'big.bin'), mode: 0o644 }];
  };
  const [ta, tb] = [await target(a, 'a'), await target(b, 'b')];
  const events: string[] = [];
  let second: Promise<unknown> | null = null;
  const first = writeZipFiles(a, zip, ta, {
    onBytes: () => {
      events.push('a');
      // started once the first holds its slots
      second ??= writeZipFiles(b, zip, tb, { onBytes: () => events.push('b') }).then(() => events.push('b done'));
    },
  }).then(() => events.push('a done'));
  await first;
  await second;
  assert.equal(events.filter((e) => e === 'a').length, chunks);
  assert.ok(events.indexOf('a done') < events.indexOf('b done'), events.join(' '));
  // the second starts once the first has no task left to start: at most WORKERS - 1 of its chunks are still in flight
  assert.ok(events.indexOf('b') >= chunks - (WORKERS - 1), events.join(' '));
  assert.ok((await readFile(join(dir, 'b', 'big.bin'))).equals(await readFile(join(dir, 'big.bin'))));
});
