/**
 * startModelServer: the model server started from code (the public API), in this process on port 0.
 */

import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { createArchive } from '../../src/archive/pack.js';
import { isMarError } from '../../src/errors.js';
import { loadConfig } from '../../src/server/config.js';
import { startModelServer } from '../../src/server/start-server.js';
import { FIXTURES, tempDir } from '../helpers/util.js';
import { http } from './server-helpers.js';

test('loadConfig: `properties` from code override the file and MMS_* variables; --model-store and --models still win', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'config.properties'), 'job_queue_size=5\nmax_request_size=10\nload_models=a.mar\n');
  const c = loadConfig({
    cwd: dir,
    env: { MMS_JOB_QUEUE_SIZE: '9', MMS_DEFAULT_WORKERS_PER_MODEL: '3' },
    properties: { job_queue_size: 7, decode_input_request: false, load_models: 'b.mar' },
    models: ['c.mar'],
  });
  assert.equal(c.jobQueueSize, 7, 'properties win over the environment and the file');
  assert.equal(c.decodeInputRequest, false, 'numbers and booleans are written as properties text');
  assert.equal(c.maxRequestSize, 10, 'keys not set from code come from the file');
  assert.equal(c.defaultWorkersPerModel, 3, '... and from the environment');
  assert.deepEqual(c.loadModels, ['c.mar'], 'models (the CLI flag) wins over properties');
});

test('startModelServer: binds port 0, loads the startup models, serves them, and stops', async (t) => {
  const store = await tempDir(t);
  await createArchive({
    modelName: 'example',
    handler: 'any_batch_handler:handle',
    runtime: 'python3',
    modelPath: join(FIXTURES, 'models', 'example'),
    exportPath: store,
  });
  const lines: string[] = [];
  const server = await startModelServer({
    cwd: store,
    env: {},
    properties: { inference_address: 'http://127.0.0.1:0', management_address: 'http://127.0.0.1:0', default_workers_per_model: 1 },
    modelStore: store,
    models: ['example.mar'],
    log: (line) => lines.push(line),
  });
  t.after(() => server.stop(0));
  const urls = Object.fromEntries(server.listeners.map((l) => [l.api, l.url]));
  assert.match(urls['inference'] ?? '', /^http:\/\/127\.0\.0\.1:[1-9]\d*$/);
  assert.match(urls['management'] ?? '', /^http:\/\/127\.0\.0\.1:[1-9]\d*$/);
  assert.deepEqual([...server.startupModels], ['example']);
  assert.ok(lines.includes('Model example loaded with 1 worker(s)'), lines.join('\n'));

  const r = await http(urls['inference']!, 'POST', '/predictions/example', 'hi', { 'content-type': 'text/plain' });
  assert.deepEqual([r.status, r.text], [200, 'OK']);
  await server.stop();
  await assert.rejects(http(urls['inference']!, 'GET', '/ping'), /ECONNREFUSED/);
});

test('startModelServer: a bad configuration rejects with a one-line MarError before anything listens', async (t) => {
  const dir = await tempDir(t);
  await assert.rejects(
    startModelServer({ cwd: dir, env: {}, properties: { inference_address: '127.0.0.1:8080' }, log: () => {} }),
    (err: unknown) =>
      isMarError(err) && err.code === 'INPUT_INVALID' && /inference_address/.test(err.message) && !err.message.includes('\n'),
  );
});
