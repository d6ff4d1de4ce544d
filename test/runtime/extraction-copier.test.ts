/** The copy helper the extractions of one process share (runtime/extraction-copier.ts). */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { test } from 'node:test';
import { extractArchive } from '../../src/archive/extract.js';
import { KERNEL_COPY_BYTES, type RangeCopier, type RangeCopyResult } from '../../src/archive/kernel-copy.js';
import { createArchive } from '../../src/archive/pack.js';
import { extractionCopier } from '../../src/runtime/extraction-copier.js';
import { resolvePython } from '../../src/runtime/python-resolve.js';
import { tempDir } from '../helpers/util.js';

test('overlapping extractions share one copy helper; the first to finish does not cut off the others', async (t) => {
  const dir = await tempDir(t);
  const src = join(dir, 'model');
  const weights = randomBytes(KERNEL_COPY_BYTES + 4321);
  await mkdir(src);
  await writeFile(join(src, 'handler.py'), 'def handle(data, context):\n    return data\n');
  await writeFile(join(src, 'weights.bin'), weights);
  await createArchive({ modelName: 'm', handler: 'handler:handle', modelPath: src, exportPath: dir });
  const zip = join(dir, 'm.mar');

  // a python3 first on PATH that records each start of the helper, then runs the real interpreter
  const real = resolvePython('python3', process.cwd()).command;
  const bin = join(dir, 'bin');
  const starts = join(dir, 'starts.log');
  await mkdir(bin);
  await writeFile(join(bin, 'python3'), `#!/bin/sh\necho start >> '${starts}'\nexec '${real}' "$@"\n`);
  await chmod(join(bin, 'python3'), 0o755);
  const path = process.env['PATH'];
  process.env['PATH'] = `${bin}${delimiter}${path ?? ''}`;
  t.after(() => {
    process.env['PATH'] = path;
  });
  const startCount = async (): Promise<number> => (await readFile(starts, 'utf8').catch(() => '')).split('\n').filter(Boolean).length;

  // every copy is the helper's (a helper that failed would be answered `unsupported`, and copied in user space)
  const answers: RangeCopyResult[] = [];
  const lease = (): RangeCopier => {
    const copier = extractionCopier()!;
    return {
      copy: async (job) => {
        const r = await copier.copy(job);
        answers.push(r);
        return r;
      },
      close: () => copier.close(),
    };
  };
  const first = lease();
  const second = lease();
  await extractArchive(zip, join(dir, 'a'), { copier: first });
  first.close();
  // the second extraction still has the helper the first one started
  await extractArchive(zip, join(dir, 'b'), { copier: second });
  second.close();
  assert.equal(await startCount(), 1);
  for (const out of ['a', 'b']) assert.ok((await readFile(join(dir, out, 'weights.bin'))).equals(weights), out);

  // after the last lease closed, the next extraction starts a helper of its own
  const later = lease();
  await extractArchive(zip, join(dir, 'c'), { copier: later });
  later.close();
  later.close();
  assert.equal(await startCount(), 2);
  assert.ok((await readFile(join(dir, 'c', 'weights.bin'))).equals(weights));
  assert.equal(answers.length, 3);
  for (const a of answers) assert.ok('crc' in a, JSON.stringify(a));
});
