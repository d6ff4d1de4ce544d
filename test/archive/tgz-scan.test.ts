/** The .tar.gz scan (archive/sources/tgz.ts) when the archive breaks in the middle of a member. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { test } from 'node:test';
import { create as createTar } from 'tar';
import { extractArchive } from '../../src/archive/extract.js';
import { scanTgz } from '../../src/archive/sources/tgz.js';
import { MarError } from '../../src/errors.js';
import { tempDir } from '../helpers/util.js';

/** A .tar.gz of a 4 MiB random member and a small one, cut in the middle of the large member's data. */
async function brokenTgz(dir: string): Promise<string> {
  const src = join(dir, 'src');
  await mkdir(join(src, 'm', 'deep'), { recursive: true });
  await writeFile(join(src, 'm', 'deep', 'big.bin'), randomBytes(4 << 20));
  await writeFile(join(src, 'm', 'small.txt'), 'after the big one');
  const whole = join(dir, 'whole.tar.gz');
  await createTar({ gzip: true, file: whole, cwd: src }, ['m']);
  const bytes = await readFile(whole);
  const cut = join(dir, 'cut.tar.gz');
  await writeFile(cut, bytes.subarray(0, bytes.length >> 1));
  return cut;
}

test('a .tar.gz that breaks mid-member rejects only after the visitor is done with that member', async (t) => {
  const dir = await tempDir(t);
  const cut = await brokenTgz(dir);
  let visiting = 0;
  const visited: string[] = [];
  await assert.rejects(
    scanTgz(cut, async (member, data) => {
      visiting++;
      try {
        if (member.type === 'file') await pipeline(data, createWriteStream(join(dir, 'copy.bin')));
        else data.resume();
      } finally {
        visiting--;
        visited.push(member.rawPath);
      }
    }).finally(() => assert.equal(visiting, 0, 'no visit is still running when the scan rejects')),
    (e: unknown) => e instanceof MarError && e.code === 'ARCHIVE_CORRUPT' && /is not a readable \.tar\.gz/.test(e.message),
  );
  assert.ok(visited.includes('m/deep/big.bin'), visited.join(', '));
});

test('extracting a .tar.gz that breaks mid-member leaves nothing beside the target', async (t) => {
  const dir = await tempDir(t);
  const cut = await brokenTgz(dir);
  const box = join(dir, 'box');
  await mkdir(box);
  await assert.rejects(extractArchive(cut, join(box, 'out')), (e: unknown) => e instanceof MarError && e.code === 'ARCHIVE_CORRUPT');
  assert.deepEqual(await readdir(box), []);
});
