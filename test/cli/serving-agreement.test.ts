/**
 * `model-server predict` and the server run the same archive with the same settings: one real predict run and one
 * real register of an archive whose model-config.yaml sets batch size, delay, timeout and workers.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { createArchive } from '../../src/archive/pack.js';
import { server, tempDir } from '../helpers/util.js';
import { http, register, startServer } from '../server/server-helpers.js';

const HANDLER = [
  'import os',
  '',
  'def handle(data, context):',
  '    if data is None:',
  '        print("loaded in pid %d" % os.getpid(), flush=True)',
  '        return None',
  '    return [{"batch_size": context.system_properties["batch_size"]} for _ in data]',
  '',
].join('\n');
const NOTE = 'Model agree: batchSize 2, maxBatchDelayMs 77, responseTimeoutSeconds 33, workers 2..2 from model-config.yaml';

test('predict and a server register of the same archive run with the same batch size, delay, timeout and workers', async (t) => {
  const src = await tempDir(t);
  await writeFile(join(src, 'agree.py'), HANDLER);
  await writeFile(join(src, 'model-config.yaml'), 'batchSize: 2\nmaxBatchDelay: 77\nresponseTimeout: 33\nminWorkers: 2\nmaxWorkers: 2\n');
  const s = await startServer(t);
  const { path: mar } = await createArchive({
    modelName: 'agree',
    handler: 'agree:handle',
    modelPath: src,
    configFile: join(src, 'model-config.yaml'),
    exportPath: s.store,
  });

  // predict: four inputs, so neither predict bound (batch <= inputs, workers <= batches) applies
  const p = await server(['predict', mar, '--data', 'a', '--data', 'b', '--data', 'c', '--data', 'd', '--json']);
  assert.equal(p.code, 0, p.stderr);
  const bodies = (JSON.parse(p.stdout) as Array<{ body: string }>).map((o) => JSON.parse(o.body) as { batch_size: number });
  assert.deepEqual(bodies, Array(4).fill({ batch_size: 2 }));
  assert.ok(p.stderr.split('\n').includes(NOTE), p.stderr);
  const predictWorkers = new Set([...p.stderr.matchAll(/\[agree (W-\S+)\] loaded in pid \d+/g)].map((m) => m[1]));
  assert.equal(predictWorkers.size, 2, p.stderr);

  // the server: a register call without parameters, then describe
  const r = await register(s, { url: 'agree.mar' });
  assert.deepEqual([r.status, r.json()], [200, { status: 'Workers scaled' }]);
  await s.waitLine(new RegExp(NOTE.replace(/[.]/g, '\\.')));
  const d = (await http(s.management, 'GET', '/models/agree')).json();
  assert.deepEqual([d.batchSize, d.maxBatchDelay, d.minWorkers, d.maxWorkers, d.workers.length], [2, 77, 2, 2, 2]);
  assert.deepEqual((await http(s.inference, 'POST', '/predictions/agree', 'x')).json(), { batch_size: 2 });
});
