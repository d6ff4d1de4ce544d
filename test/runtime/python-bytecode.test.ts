/**
 * The Python worker caches its own modules' bytecode in MAR_WORKER_PYCACHE (_mar_worker/bytecode.py): a second
 * worker loads them compiled; nothing is written beside the package's sources or the model's files, and the handler
 * runs with the interpreter's own bytecode settings (as before the cache).
 */

import assert from 'node:assert/strict';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { packagePath } from '../../src/util/package-info.js';
import { server, tempDir } from '../helpers/util.js';

async function files(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true }).catch(() => [] as string[])).map(String);
}

test("our modules' bytecode goes to MAR_WORKER_PYCACHE only; the handler sees the interpreter's settings", async (t) => {
  const dir = await tempDir(t, 'mar-pyc-');
  const model = join(dir, 'm');
  await mkdir(join(model, 'MAR-INF'), { recursive: true });
  await writeFile(
    join(model, 'settings.py'),
    'import sys\n\ndef handle(data, context):\n    return None if data is None else ["%s|%s" % (sys.pycache_prefix, sys.dont_write_bytecode)]\n',
  );
  await writeFile(
    join(model, 'MAR-INF', 'MANIFEST.json'),
    JSON.stringify({ runtime: 'python', model: { modelName: 'm', handler: 'settings:handle' } }),
  );
  const pycache = join(dir, 'pycache');
  const env: NodeJS.ProcessEnv = { ...process.env, MAR_WORKER_PYCACHE: pycache, MAR_CACHE_DIR: join(dir, 'cache') };
  delete env['PYTHONPYCACHEPREFIX'];
  for (const run of [1, 2]) {
    const r = await server(['predict', model, '--data', 'x', '--quiet'], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'None|True', `run ${run}: the handler runs without a prefix and writes no bytecode`);
  }
  const cached = await files(pycache);
  for (const module of ['main', 'serve', 'codec', 'loading']) {
    assert.ok(
      cached.some((f) => new RegExp(`_mar_worker[/\\\\]${module}\\.cpython-\\d+\\.pyc$`).test(f)),
      `${module} is cached: ${cached.join(', ')}`,
    );
  }
  assert.ok(!cached.some((f) => f.includes('settings.cpython')), "the handler's module is not cached");
  assert.deepEqual(
    (await files(model)).filter((f) => f.includes('__pycache__')),
    [],
  );
  const sources = await files(packagePath('src', 'runtime', 'python'));
  assert.deepEqual(
    sources.filter((f) => f.includes('__pycache__') && !f.startsWith('tests')),
    [],
  );
});

test('MAR_WORKER_PYCACHE empty: no bytecode cached', async (t) => {
  const dir = await tempDir(t, 'mar-pyc-');
  const r = await server(['predict', packagePath('fixtures', 'handlers', 'python'), '--handler', 'noop:handle', '--data', 'x', '--quiet'], {
    env: { ...process.env, MAR_WORKER_PYCACHE: '', MAR_CACHE_DIR: join(dir, 'cache'), XDG_CACHE_HOME: join(dir, 'xdg') },
  });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'OK');
  assert.deepEqual(await files(join(dir, 'xdg')), []);
});
