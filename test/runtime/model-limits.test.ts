import assert from 'node:assert/strict';
import { copyFile, mkdir, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { createArchive } from '../../src/archive/pack.js';
import { openModel } from '../../src/runtime/model.js';
import { FIXTURES, tempDir } from '../helpers/util.js';

// A model made mostly of zero-filled tensors deflates ~1000:1. Loading it must not be mistaken for a zip bomb
// (the extract command's default ratio limit is for untrusted archives), or the server could never serve it.
test('openModel loads an archive whose zero-filled weights compress far beyond the extract ratio limit', async (t) => {
  const dir = await tempDir(t);
  const modelDir = join(dir, 'model');
  await mkdir(modelDir);
  await copyFile(join(FIXTURES, 'handlers', 'python', 'noop.py'), join(modelDir, 'noop.py'));
  await writeFile(join(modelDir, 'zeros.bin'), '');
  await truncate(join(modelDir, 'zeros.bin'), 64 * 1024 * 1024);
  const created = await createArchive({
    modelName: 'zeros',
    handler: 'noop:handle',
    modelPath: modelDir,
    exportPath: dir,
    runtime: 'python3',
  });
  const model = await openModel(created.path, { cacheDir: join(dir, 'cache') });
  t.after(() => model.release());
  assert.equal(model.name, 'zeros');
  assert.equal(model.handler, 'noop:handle');
});
