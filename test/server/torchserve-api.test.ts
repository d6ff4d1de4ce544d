/**
 * The management and inference APIs in TorchServe's dialect: its status texts and codes (register, scale, 206,
 * /ping 500, no-worker 503), enable_model_api, and worker start semantics (a handler the archive lacks
 * registers and fails at worker start with the handler's error; startup_timeout; empty and malformed urls).
 * The MMS dialect keeps its answers (management-api.test.ts); a few are asserted side by side here.
 */
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { http, register, registerPy, startServer } from './server-helpers.js';

const TS = { load: { dialect: 'torchserve', disableTokenAuth: true, enableModelApi: true } } as const;

test('TorchServe texts: register with 0 and N workers, scale, async, no worker 503, unregister', async (t) => {
  const s = await startServer(t, TS);
  const M = s.management;
  const zero = await register(s, { url: 'py', model_name: 'noop', handler: 'noop:handle' });
  assert.deepEqual(
    [zero.status, zero.json()],
    [200, { status: 'Model "noop" Version: 1.0 registered with 0 initial workers. Use scale workers API to add workers for the model.' }],
  );
  const noWorker = await http(s.inference, 'POST', '/predictions/noop', 'x');
  assert.deepEqual(
    [noWorker.status, noWorker.json()],
    [
      503,
      {
        code: 503,
        type: 'ServiceUnavailableException',
        message:
          'Model "noop" has no worker to serve inference request. Please use scale workers API to add workers. ' +
          'If this is a sequence inference, please check if it is closed, or expired; or exceeds maxSequenceJobQueueSize',
      },
    ],
  );
  const scaled = await http(M, 'PUT', '/models/noop?min_worker=1&synchronous=true');
  assert.deepEqual([scaled.status, scaled.json()], [200, { status: 'Workers scaled to 1 for model: noop' }]);
  assert.equal((await http(s.inference, 'POST', '/predictions/noop', 'x')).text, 'OK');
  const asyncScale = await http(M, 'PUT', '/models/noop?min_worker=1');
  assert.deepEqual([asyncScale.status, asyncScale.json()], [202, { status: 'Processing worker updates...' }]);
  const withWorkers = await registerPy(s, 'noop2', 'noop:handle');
  assert.deepEqual(
    [withWorkers.status, withWorkers.json()],
    [200, { status: 'Model "noop2" Version: 1.0 registered with 1 initial workers' }],
  );
  const gone = await http(M, 'DELETE', '/models/noop2');
  assert.deepEqual([gone.status, gone.json()], [200, { status: 'Model "noop2" unregistered' }]);
  assert.deepEqual((await http(s.inference, 'GET', '/ping')).json(), { status: 'Healthy' });
});

test('TorchServe /ping: 500 Unhealthy while a model has fewer workers than configured (MMS: 200)', async (t) => {
  for (const [options, code] of [
    [TS, 500],
    [{}, 200],
  ] as const) {
    const s = await startServer(t, options);
    assert.equal((await register(s, { url: 'py', model_name: 'broken', handler: 'load_fail:handle' })).status, 200);
    // asynchronous: the worker keeps failing to load and is retried, the model stays registered
    assert.equal((await http(s.management, 'PUT', '/models/broken?min_worker=1')).status, 202);
    const ping = await http(s.inference, 'GET', '/ping');
    assert.deepEqual([ping.status, ping.json()], [code, { status: 'Unhealthy' }]);
    await s.stop();
  }
});

test('TorchServe register: a handler missing from the archive registers and fails at worker start with its error', async (t) => {
  const s = await startServer(t, TS);
  const M = s.management;
  // TorchServe's management collection: "Register Mnist Model with Invalid Handler" then a synchronous scale
  assert.equal((await register(s, { url: 'py', model_name: 'mnist', handler: 'invalidHandler' })).status, 200);
  const scale = await http(M, 'PUT', '/models/mnist?min_worker=1&synchronous=true');
  assert.equal(scale.status, 500);
  assert.match(scale.json().message, /^Failed to start workers for model mnist version: 1\.0: .*No module named 'invalidHandler'/);
  // a handler whose own import fails: the handler's error in the answer and in the log, not a bare "Worker died"
  await mkdir(join(s.store, 'bad_import'));
  await writeFile(join(s.store, 'bad_import', 'h.py'), 'import definitely_not_installed\n\ndef handle(d, c):\n    return d\n');
  const r = await register(s, { url: 'bad_import', model_name: 'bad', handler: 'h:handle', initial_workers: 1 });
  assert.equal(r.status, 500);
  assert.match(r.json().message, /^Failed to start workers for model bad version: 1\.0: .*No module named 'definitely_not_installed'/);
  await s.waitLine(/No module named 'definitely_not_installed'/);
  assert.equal((await http(M, 'GET', '/models/bad')).status, 404, 'a failed register is undone');
  // the MMS dialect still checks the handler at register time
  const mms = await startServer(t);
  const early = await register(mms, { url: 'py', model_name: 'mnist', handler: 'invalidHandler' });
  assert.equal(early.status, 400);
  assert.match(early.json().message, /handler module invalidHandler not found/);
});

test('startup_timeout bounds worker start: 0 fails a register with workers, not one without', async (t) => {
  const s = await startServer(t, TS);
  const none = await register(s, { url: 'py', model_name: 'a', handler: 'noop:handle', startup_timeout: 0 });
  assert.equal(none.status, 200);
  const timed = await register(s, { url: 'py', model_name: 'b', handler: 'noop:handle', initial_workers: 1, startup_timeout: 0 });
  assert.equal(timed.status, 500);
  assert.match(timed.json().message, /^Failed to start workers for model b version: 1\.0: .*did not start within 0 ms/);
  // the server-wide default_startup_timeout
  const strict = await startServer(t, { ...TS, props: { default_startup_timeout: 0 } });
  assert.equal((await registerPy(strict, 'c', 'noop:handle')).status, 500);
  assert.equal((await registerPy(strict, 'd', 'noop:handle', { startup_timeout: 60 })).status, 200);
});

test('TorchServe url answers: empty 404, malformed 400, not in the store 404; model API off answers 405', async (t) => {
  const s = await startServer(t, TS);
  const empty = await register(s, { url: '', model_name: 'resnet-18' });
  assert.deepEqual([empty.status, empty.json()], [404, { code: 404, type: 'ModelNotFoundException', message: 'empty url' }]);
  const malformed = await register(s, { url: 'http://[bad/x.mar', model_name: 'm' });
  assert.deepEqual([malformed.status, malformed.json().message], [400, 'Failed to download archive from: http://[bad/x.mar']);
  const missing = await register(s, { url: 'nosuch.mar' });
  assert.deepEqual([missing.status, missing.json().message], [404, 'Model not found at: nosuch.mar']);
  const off = await startServer(t, { load: { dialect: 'torchserve', disableTokenAuth: true } });
  const post = await register(off, { url: 'py', model_name: 'noop', handler: 'noop:handle' });
  assert.deepEqual(
    [post.status, post.json()],
    [405, { code: 405, type: 'MethodNotAllowedException', message: 'Requested method is not allowed, please refer to API document.' }],
  );
  assert.equal((await http(off.management, 'DELETE', '/models/noop')).status, 405);
  assert.equal((await http(off.management, 'GET', '/models')).status, 200);
});
