/**
 * Workers spawned before their model is on disk (worker-prespawn.ts): WorkerProcess.start adopts one that was
 * launched the same way, and the handler then sees exactly what a worker spawned for the model sees (cwd,
 * sys.path / environment); one launched differently is not adopted, and discarding leaves no process.
 */

import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { openModel } from '../../src/runtime/model.js';
import type { InferenceRequest } from '../../src/runtime/protocol.js';
import { prespawnedCount, prespawnWorkers } from '../../src/runtime/worker-prespawn.js';
import { WorkerProcess } from '../../src/runtime/worker-process.js';
import { tempDir } from '../helpers/util.js';

const PY_WHERE = `import json, os, sys


def handle(data, context):
    if data is None:
        return None
    return [json.dumps({"cwd": os.getcwd(), "path": sys.path, "PYTHONPATH": os.environ.get("PYTHONPATH"),
                        "threads": os.environ.get("MAR_TORCH_THREADS")})] * len(data)
`;
const JS_WHERE = `export function handle(data) {
  if (data === null) return null;
  return data.map(() => JSON.stringify({ cwd: process.cwd(), USERVAR: process.env.USERVAR ?? null }));
}
`;

const REQUEST: InferenceRequest = {
  requestId: 'r1',
  headers: [],
  params: [{ name: 'body', contentType: 'text/plain', value: Buffer.from('x') }],
};

/** A model dir with the handler one directory down (the handler dir goes first on PYTHONPATH). */
async function model(t: TestContext, runtime: 'python' | 'node') {
  const dir = await tempDir(t, 'mar-prespawn-');
  await mkdir(join(dir, 'model', 'sub'), { recursive: true });
  await mkdir(join(dir, 'elsewhere'));
  await writeFile(join(dir, 'model', 'sub', runtime === 'python' ? 'where.py' : 'where.js'), runtime === 'python' ? PY_WHERE : JS_WHERE);
  await writeFile(join(dir, 'model', 'package.json'), '{"type": "module"}');
  const opened = await openModel(join(dir, 'model'), { modelName: 'where', handler: 'sub/where:handle', runtime });
  return { dir, opened };
}

async function answer(t: TestContext, opened: Awaited<ReturnType<typeof openModel>>, env: NodeJS.ProcessEnv): Promise<unknown> {
  const worker = await WorkerProcess.start({ id: '1', model: opened, batchSize: 1, workers: 2, env, log: () => {} });
  t.after(() => worker.stop(500));
  const reply = await worker.predict([REQUEST], 30_000);
  return JSON.parse(reply.predictions[0]!.body.toString('utf8'));
}

test('an adopted Python worker has the cwd, sys.path and environment of one spawned for its model', async (t) => {
  const { dir, opened } = await model(t, 'python');
  // a user PYTHONPATH with an absolute and a relative entry (relative to the model dir, the worker's cwd)
  const env = { ...process.env, PYTHONPATH: [join(dir, 'lib'), 'rel'].join(':') };
  const fresh = await answer(t, opened, env);
  const group = await prespawnWorkers({
    runtime: 'python',
    standInDir: join(dir, 'elsewhere'),
    env,
    workers: 1,
    decodeInputRequest: true,
    metrics: false,
  });
  t.after(() => group.discard());
  assert.equal(group.pids.length, 1);
  assert.equal(prespawnedCount(), 1);
  const adopted = await answer(t, opened, env);
  assert.equal(prespawnedCount(), 0, 'the pre-spawned worker was adopted');
  assert.deepEqual(adopted, fresh);
  assert.equal((fresh as { cwd: string }).cwd, opened.dir);
  // spawned for 1 worker, adopted by a model with 2: torch's share of the cores is the adopter's
  assert.equal((adopted as { threads: string }).threads, String(Math.max(1, Math.floor(availableParallelism() / 2))));
});

test('an adopted Node worker runs in its model dir with the same environment', async (t) => {
  const { dir, opened } = await model(t, 'node');
  const env = { ...process.env, USERVAR: 'u1' };
  const fresh = await answer(t, opened, env);
  const group = await prespawnWorkers({
    runtime: 'node',
    standInDir: join(dir, 'elsewhere'),
    env,
    decodeInputRequest: true,
    metrics: false,
  });
  t.after(() => group.discard());
  const adopted = await answer(t, opened, env);
  assert.equal(prespawnedCount(), 0, 'the pre-spawned worker was adopted');
  assert.deepEqual(adopted, fresh);
});

test('a worker launched differently is not adopted; discarding it leaves no process', async (t) => {
  const { dir, opened } = await model(t, 'python');
  const group = await prespawnWorkers({
    runtime: 'python',
    standInDir: join(dir, 'elsewhere'),
    env: { ...process.env, OTHER_SETTING: '1' },
    decodeInputRequest: true,
    metrics: false,
  });
  await answer(t, opened, process.env);
  assert.equal(prespawnedCount(), 1, 'another environment: a fresh worker was spawned');
  assert.equal(await group.discard(), 1);
  assert.equal(prespawnedCount(), 0);
  assert.throws(() => process.kill(group.pids[0]!, 0), { code: 'ESRCH' });
});

test('a worker that waited close to its accept timeout is not adopted: the model gets a fresh one', async (t) => {
  const { dir, opened } = await model(t, 'python');
  const group = await prespawnWorkers({ runtime: 'python', standInDir: join(dir, 'elsewhere'), decodeInputRequest: true, metrics: false });
  t.after(() => group.discard());
  t.mock.timers.enable({ apis: ['Date'], now: Date.now() });
  t.mock.timers.tick(91_000);
  // adoption is decided when start is called, before its first await
  const starting = WorkerProcess.start({ id: '1', model: opened, batchSize: 1, log: () => {} });
  t.mock.timers.reset();
  const worker = await starting;
  t.after(() => worker.stop(500));
  assert.notEqual(worker.pid, group.pids[0]);
  assert.equal(prespawnedCount(), 1);
});
