/**
 * What needs no torch: a model whose handler needs torch, on a Python without it, fails at load with that
 * interpreter's path and how to install torch; and when TorchServe's own `ts` package is installed for the workers'
 * Python, it wins over ours, for handlers that import it and for built-in handler names alike.
 */

import assert from 'node:assert/strict';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { archiver, server, tempDir } from '../helpers/util.js';

const PYTHON = process.env['MAR_TEST_PYTHON'] ?? 'python3';

/** A Python without site-packages (`-S`): the standard library only, so no torch whatever is installed. */
async function pythonWithoutPackages(dir: string): Promise<string> {
  const shim = join(dir, 'python-no-site');
  await writeFile(shim, `#!/bin/sh\nexec ${PYTHON} -S "$@"\n`);
  await chmod(shim, 0o755);
  return shim;
}

test('a built-in handler on a Python without torch fails at load, naming that interpreter and how to install torch', async (t) => {
  const dir = await tempDir(t, 'mar-notorch-');
  await writeFile(join(dir, 'model.pt'), 'not really TorchScript');
  const created = await archiver([
    '--model-name',
    'r',
    '--serialized-file',
    join(dir, 'model.pt'),
    '--handler',
    'image_classifier',
    '--export-path',
    dir,
  ]);
  assert.equal(created.code, 0, created.stderr);
  assert.match(
    created.stderr,
    /note: handler "image_classifier" is a TorchServe built-in handler: model-server runs ts\.torch_handler\.image_classifier\.ImageClassifier/,
  );
  const python = await pythonWithoutPackages(dir);
  const r = await server(['predict', join(dir, 'r.mar'), '--python', python, '--data', 'x', '-q']);
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    /^error: Failed to load model r: ModuleNotFoundError: No module named 'torch' in Python 3\.\d+\.\d+ at \/\S+: install PyTorch for this interpreter \(pip install torch; Debian: apt-get install python3-torch\), or run the workers with a Python that has it \(--python, the python config key or MAR_PYTHON\)\n$/,
  );
  // The interpreter can also come from MAR_PYTHON alone.
  const viaEnv = await server(['predict', join(dir, 'r.mar'), '--data', 'x', '-q'], { env: { MAR_PYTHON: python } });
  assert.match(viaEnv.stderr, /No module named 'torch' in Python 3/);
});

test("TorchServe's own ts package, installed for the workers' Python, wins over ours: imports and built-in names", async (t) => {
  const dir = await tempDir(t, 'mar-realts-');
  const site = join(dir, 'site');
  await mkdir(join(site, 'ts', 'torch_handler'), { recursive: true });
  await writeFile(join(site, 'ts', '__init__.py'), 'REAL = True\n');
  await writeFile(join(site, 'ts', 'torch_handler', '__init__.py'), '');
  await writeFile(
    join(site, 'ts', 'torch_handler', 'base_handler.py'),
    'class BaseHandler(object):\n    def initialize(self, context):\n        self.context = context\n\n' +
      '    def handle(self, data, context):\n        return ["real " + type(self).__name__] * len(data)\n',
  );
  await writeFile(
    join(site, 'ts', 'torch_handler', 'image_classifier.py'),
    'from ts.torch_handler.base_handler import BaseHandler\n\n\nclass ImageClassifier(BaseHandler):\n    pass\n',
  );
  const model = join(dir, 'model');
  await mkdir(model);
  await writeFile(
    join(model, 'my_handler.py'),
    'from ts.torch_handler.base_handler import BaseHandler\n\n\nclass MyHandler(BaseHandler):\n    pass\n',
  );
  const env = { PYTHONPATH: site };
  const custom = await server(['predict', model, '--handler', 'my_handler', '--model-name', 'm', '--data', 'x'], { env });
  assert.equal(custom.code, 0, custom.stderr);
  assert.equal(custom.stdout, 'real MyHandler');
  const builtin = await server(['predict', model, '--handler', 'image_classifier', '--model-name', 'm', '--data', 'x'], { env });
  assert.equal(builtin.code, 0, builtin.stderr);
  assert.equal(builtin.stdout, 'real ImageClassifier');
  assert.match(
    builtin.stderr,
    new RegExp(
      `Model m: handler ts\\.torch_handler\\.image_classifier\\.ImageClassifier \\(built-in, from \\S*${join('site', 'ts', 'torch_handler', 'image_classifier.py')}\\); Python 3`,
    ),
  );
});
