/** The server and the extraction cache: its config keys, and startup models loaded concurrently into it. */
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { createArchive } from '../../src/archive/pack.js';
import { MarError } from '../../src/errors.js';
import { listCache } from '../../src/runtime/cache/eviction.js';
import { loadConfig } from '../../src/server/config.js';
import { tempDir } from '../helpers/util.js';
import { http, startServer } from './server-helpers.js';

test('model_cache_dir and model_cache_max_size: file, MMS_* environment, and bad values', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'config.properties'), 'model_cache_dir=cache\nmodel_cache_max_size=20G\n');
  assert.deepEqual(loadConfig({ cwd: dir, env: {} }).modelCache, { cacheDir: join(dir, 'cache'), cacheMaxSize: { bytes: 20 * 2 ** 30 } });
  assert.deepEqual(loadConfig({ cwd: dir, env: { MMS_MODEL_CACHE_MAX_SIZE: '50%', MMS_MODEL_CACHE_DIR: '/var/cache/m' } }).modelCache, {
    cacheDir: '/var/cache/m',
    cacheMaxSize: { fraction: 0.5 },
  });
  assert.deepEqual(loadConfig({ cwd: await tempDir(t), env: {} }).modelCache, {}, 'unset: the environment and defaults decide');
  for (const bad of ['lots', '150%', '0%', '-1G']) {
    assert.throws(
      () => loadConfig({ cwd: dir, env: {}, properties: { model_cache_max_size: bad } }),
      (e: unknown) =>
        e instanceof MarError &&
        e.code === 'INPUT_INVALID' &&
        e.message ===
          `invalid config value model_cache_max_size=${JSON.stringify(bad)}: expected a size (20G, 512M, bytes) or a percentage of the disk (50%)`,
    );
  }
});

const MODELS = 3;

/** A handler whose LOAD waits until every startup model has begun loading: it only finishes if they load at once. */
function gateHandler(gate: string): string {
  return [
    'import os, time',
    `GATE = ${JSON.stringify(gate)}`,
    'def handle(data, context):',
    '    if data is None:',
    '        open(os.path.join(GATE, context.model_name), "w").close()',
    '        deadline = time.time() + 20',
    `        while len(os.listdir(GATE)) < ${MODELS}:`,
    '            if time.time() > deadline:',
    '                raise RuntimeError("the other startup models never started loading")',
    '            time.sleep(0.01)',
    '        return None',
    '    return ["OK"] * len(data)',
    '',
  ].join('\n');
}

test('startup models load concurrently: ready once all are up, each extracted into model_cache_dir', async (t) => {
  const work = await tempDir(t);
  const gate = join(work, 'gate');
  await mkdir(gate);
  const src = join(work, 'src');
  await mkdir(src);
  await writeFile(join(src, 'gated.py'), gateHandler(gate));
  const store = join(work, 'store');
  await mkdir(store);
  const names = Array.from({ length: MODELS }, (_, i) => `m${i}`);
  for (const name of names) await createArchive({ modelName: name, handler: 'gated:handle', modelPath: src, exportPath: store });
  const s = await startServer(t, {
    props: { model_store: store, load_models: names.map((n) => `${n}.mar`).join(','), default_workers_per_model: 1 },
  });
  for (const name of names) assert.ok(s.lines.includes(`Model ${name} loaded with 1 worker(s)`), s.lines.join('\n'));
  const ping = await http(s.inference, 'GET', '/ping');
  assert.deepEqual([ping.status, ping.json().status], [200, 'Healthy']);
  const cached = await listCache(join(s.dir, 'cache'));
  assert.deepEqual(cached.map((e) => e.record?.archive).sort(), names.map((n) => join(store, `${n}.mar`)).sort());
  assert.ok(
    cached.every((e) => e.users === 1),
    'each is in use by the server',
  );
});
