/**
 * A pyenv shim is resolved to the interpreter it would run, by pyenv's rules, without running it; anything the
 * rules cannot settle keeps the shim. Against a fake pyenv root whose shim fails if it is ever run.
 */

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmod, mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { openModel } from '../../src/runtime/model.js';
import { resolvePython } from '../../src/runtime/python-resolve.js';
import { WorkerProcess } from '../../src/runtime/worker-process.js';
import { FIXTURES, tempDir } from '../helpers/util.js';

/** The shim pyenv writes (abridged), except that running it fails loudly. */
const shimText = (root: string): string =>
  `#!/usr/bin/env bash\nset -e\nexport PYENV_ROOT="${root}"\necho "the shim was run" >&2; exit 3\nexec "${root}/libexec/pyenv" exec "python3" "$@"\n`;

async function fakePyenv(t: TestContext, versions: string[], target?: string): Promise<{ root: string; shims: string; work: string }> {
  const dir = await tempDir(t, 'mar-pyenv-');
  const root = join(dir, 'pyenv');
  const shims = join(root, 'shims');
  await mkdir(shims, { recursive: true });
  await writeFile(join(shims, 'python3'), shimText(root));
  await chmod(join(shims, 'python3'), 0o755);
  for (const v of versions) {
    await mkdir(join(root, 'versions', v, 'bin'), { recursive: true });
    const bin = join(root, 'versions', v, 'bin', 'python3');
    if (target) await symlink(target, bin);
    else {
      await writeFile(bin, '#!/bin/sh\n');
      await chmod(bin, 0o755);
    }
  }
  const work = join(dir, 'work', 'model');
  await mkdir(work, { recursive: true });
  return { root, shims, work };
}

test('resolvePython: a pyenv shim becomes its version interpreter (PYENV_VERSION, .python-version upwards, global file)', async (t) => {
  const { root, shims, work } = await fakePyenv(t, ['3.10.1', '3.12.0']);
  const env = { PATH: `${shims}:/usr/bin` };
  await writeFile(join(root, 'version'), '3.12.0\n');
  const bin = (v: string): string => join(root, 'versions', v, 'bin');
  assert.deepEqual(resolvePython('python3', work, env), {
    command: join(bin('3.12.0'), 'python3'),
    env: { PATH: `${bin('3.12.0')}:${shims}:/usr/bin`, PYENV_VERSION: '3.12.0' },
  });
  // a .python-version above the working directory wins over the global file
  await writeFile(join(work, '..', '.python-version'), '# pinned\n3.10.1\n');
  assert.equal(resolvePython('python3', work, env).command, join(bin('3.10.1'), 'python3'));
  // PYENV_VERSION wins over both
  assert.equal(resolvePython('python3', work, { ...env, PYENV_VERSION: '3.12.0' }).command, join(bin('3.12.0'), 'python3'));
  // the shim given by path is a shim too
  assert.equal(resolvePython(join(shims, 'python3'), work, { PYENV_VERSION: '3.12.0' }).command, join(bin('3.12.0'), 'python3'));
});

test('resolvePython: what pyenv decides by itself keeps the shim (system, a prefix, a missing version); others are untouched', async (t) => {
  const { root, shims, work } = await fakePyenv(t, ['3.12.0']);
  const env = { PATH: `${shims}:/usr/bin` };
  const kept = { command: 'python3', env: {} };
  for (const version of ['system', '3.12', '3.9.9']) {
    assert.deepEqual(resolvePython('python3', work, { ...env, PYENV_VERSION: version }), kept, version);
  }
  assert.deepEqual(resolvePython('python3', work, env), kept, 'no version file at all');
  await writeFile(join(root, 'version'), '3.12.0\n');
  // not found on PATH, or not a shim
  assert.deepEqual(resolvePython('python3', work, { PATH: '/nonexistent' }), kept);
  assert.deepEqual(resolvePython(process.execPath, work, env), { command: process.execPath, env: {} });
});

test('a Python worker started through a pyenv shim runs the interpreter directly (the shim never runs)', async (t) => {
  let python: string;
  try {
    python = execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).trim();
  } catch {
    t.skip('needs python3 on PATH');
    return;
  }
  const { shims } = await fakePyenv(t, ['3.99.0'], python);
  const model = await openModel(join(FIXTURES, 'handlers', 'python'), { modelName: 'fx', handler: 'noop:handle', runtime: 'python' });
  const stderr: string[] = [];
  const worker = await WorkerProcess.start({
    id: '1',
    model,
    batchSize: 1,
    env: { ...process.env, PATH: `${shims}:${process.env['PATH'] ?? ''}`, PYENV_VERSION: '3.99.0' },
    log: (l) => stderr.push(l.line),
  });
  try {
    const reply = await worker.predict(
      [{ requestId: 'r1', headers: [], params: [{ name: 'body', contentType: null, value: Buffer.from('x') }] }],
      10_000,
    );
    assert.equal(reply.code, 200);
    assert.ok(!stderr.some((l) => l.includes('the shim was run')), stderr.join('\n'));
  } finally {
    await worker.stop();
  }
});
