import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { modelConfigSettings } from '../../src/runtime/serving-options.js';
import { tempDir } from '../helpers/util.js';
import { http, type RunningServer, register, registerPy, startServer } from './server-helpers.js';

const bad = (message: string) => ({ code: 400, type: 'BadRequestException', message });
const notFound = (message: string) => ({ code: 404, type: 'ModelNotFoundException', message });

test('model-config.yaml settings follow TorchServe: positive values win, workers only as a valid min/max pair', () => {
  assert.deepEqual(modelConfigSettings(null), {});
  assert.deepEqual(
    modelConfigSettings({ batchSize: 8, maxBatchDelay: 50, responseTimeout: 30, jobQueueSize: 10, minWorkers: 2, maxWorkers: 4 }),
    {
      batchSize: 8,
      maxBatchDelayMs: 50,
      responseTimeoutSeconds: 30,
      jobQueueSize: 10,
      workers: { min: 2, max: 4 },
    },
  );
  assert.deepEqual(modelConfigSettings({ batchSize: 0, maxBatchDelay: -1, minWorkers: 3, maxWorkers: 2, handler: { any: 1 } }), {});
  assert.deepEqual(modelConfigSettings({ minWorkers: 1 }), {}, 'a lone minWorkers is not a valid pair');
});

/** A fresh in-process server per subtest (none depends on models another one registered) and its two base URLs. */
async function fresh(t: TestContext): Promise<{ s: RunningServer; M: string; I: string }> {
  const s = await startServer(t);
  return { s, M: s.management, I: s.inference };
}

test('management API: register, scale, describe, list, unregister with MMS statuses and messages', async (t) => {
  await t.test('register with 0 workers: 200 Model "X" registered; predictions then get 503', async (t) => {
    const { s, I } = await fresh(t);
    const r = await register(s, { url: 'py', model_name: 'idle', handler: 'noop:handle' });
    assert.equal(r.status, 200);
    assert.equal(r.text, '{\n  "status": "Model \\"idle\\" registered"\n}\n');
    const p = await http(I, 'POST', '/predictions/idle', 'x');
    assert.equal(p.status, 503);
    assert.deepEqual(p.json(), {
      code: 503,
      type: 'ServiceUnavailableException',
      message: 'No worker is available to serve request for model: idle. Consider increasing job queue size.',
    });
    // ping: 0 configured workers -> still Healthy
    assert.deepEqual((await http(I, 'GET', '/ping')).json(), { status: 'Healthy' });
  });

  await t.test('register synchronously with workers: 200 Workers scaled; async: 202 Processing worker updates...', async (t) => {
    const { s, I } = await fresh(t);
    const r = await registerPy(s, 'noop', 'noop:handle');
    assert.deepEqual([r.status, r.json()], [200, { status: 'Workers scaled' }]);
    assert.equal((await http(I, 'POST', '/predictions/noop', 'x')).text, 'OK');
    const a = await registerPy(s, 'later', 'noop:handle', { synchronous: false });
    assert.deepEqual([a.status, a.json()], [202, { status: 'Processing worker updates...' }]);
  });

  await t.test('register parameters from a JSON body (query ignored), response_timeout in seconds', async (t) => {
    const { M } = await fresh(t);
    const body = JSON.stringify({
      url: 'py',
      model_name: 'batched',
      handler: 'batch_size:handle',
      batch_size: 4,
      max_batch_delay: 50,
      initial_workers: 1,
      synchronous: true,
      response_timeout: 5,
    });
    const r = await http(M, 'POST', '/models?model_name=ignored', body, { 'content-type': 'application/json' });
    assert.deepEqual([r.status, r.json()], [200, { status: 'Workers scaled' }]);
    const d = (await http(M, 'GET', '/models/batched')).json();
    assert.equal(d.batchSize, 4);
    assert.equal(d.maxBatchDelay, 50);
    assert.equal((await http(M, 'GET', '/models/ignored')).status, 404);
  });

  await t.test("a JSON register body is read leniently, as Gson does (the body of MMS's own test)", async (t) => {
    const { M, I } = await fresh(t);
    const body = "{'url':'py', 'model_name':'lenient', handler: 'noop:handle', /* as MMS */ 'initial_workers':'1', 'synchronous':'true'}";
    const r = await http(M, 'POST', '/models', body, { 'content-type': 'application/json' });
    assert.deepEqual([r.status, r.json()], [200, { status: 'Workers scaled' }]);
    assert.equal((await http(I, 'POST', '/predictions/lenient', 'x')).text, 'OK');
    const broken = await http(M, 'POST', '/models', "{'url': 'py'", { 'content-type': 'application/json' });
    assert.deepEqual([broken.status, broken.json()], [400, bad('Invalid JSON request body.')]);
  });

  await t.test('register errors: url, runtime, store escapes, unknown file, duplicate, remote urls off', async (t) => {
    const { s, M } = await fresh(t);
    assert.deepEqual((await register(s, {})).json(), bad('Parameter url is required.'));
    const rt = await register(s, { url: 'py', model_name: 'r', handler: 'noop:handle', runtime: 'java' });
    assert.deepEqual([rt.status, rt.json()], [400, bad('Invalid RuntimeType value: java')]);
    const rel = await register(s, { url: '../etc', model_name: 'r' });
    assert.deepEqual([rel.status, rel.json()], [404, notFound('Relative path is not allowed in url: ../etc')]);
    const missing = await register(s, { url: 'nosuch.mar' });
    assert.deepEqual([missing.status, missing.json()], [404, notFound('Model not found in model store: nosuch.mar')]);
    // a symlink out of the store is refused too
    await mkdir(join(s.dir, 'outside'), { recursive: true });
    await writeFile(join(s.dir, 'outside', 'noop.py'), 'def handle(d, c):\n    return None if d is None else ["x"] * len(d)\n');
    await symlink(join(s.dir, 'outside'), join(s.store, 'link'));
    const esc = await register(s, { url: 'link', model_name: 'esc', handler: 'noop:handle' });
    assert.equal(esc.status, 404);
    assert.equal(esc.json().type, 'ModelNotFoundException');
    assert.equal((await register(s, { url: 'py', model_name: 'noop', handler: 'noop:handle' })).status, 200);
    const dup = await registerPy(s, 'noop', 'noop:handle');
    assert.deepEqual(
      [dup.status, dup.json()],
      [409, { code: 409, type: 'ConflictStatusException', message: 'Model noop is already registered.' }],
    );
    const remote = await register(s, { url: 'http://127.0.0.1:1/x.mar' });
    assert.equal(remote.status, 404);
    assert.equal(remote.json().message, 'Given URL http://127.0.0.1:1/x.mar does not match any allowed URL(s)');
    assert.equal((await http(M, 'GET', '/models/esc')).status, 404);
    // hints name the register parameters, not the command-line flags
    const noHandler = await register(s, { url: 'py', model_name: 'nohandler' });
    assert.equal(noHandler.status, 400);
    assert.match(noHandler.json().message, /pass handler=module:function \(and model_name=NAME\) to run it$/);
    const wrongModule = await register(s, { url: 'py', model_name: 'wrongmod', handler: 'nosuch:handle' });
    assert.match(wrongModule.json().message, /check the handler name \(the handler parameter\)/);
    assert.doesNotMatch(noHandler.text + wrongModule.text, /--handler|--model-name/);
  });

  await t.test(
    "TorchServe's model-config.yaml in the archive sets batching, timeout and workers (over the register parameters)",
    async (t) => {
      const { s, M, I } = await fresh(t);
      const dir = join(s.store, 'configured');
      await mkdir(join(dir, 'MAR-INF'), { recursive: true });
      await writeFile(join(dir, 'noop.py'), 'def handle(d, c):\n    return None if d is None else ["OK"] * len(d)\n');
      await writeFile(
        join(dir, 'model-config.yaml'),
        'minWorkers: 1\nmaxWorkers: 2\nbatchSize: 4\nmaxBatchDelay: 20\nresponseTimeout: 7\n',
      );
      await writeFile(
        join(dir, 'MAR-INF', 'MANIFEST.json'),
        JSON.stringify({ runtime: 'python', model: { modelName: 'configured', handler: 'noop:handle', configFile: 'model-config.yaml' } }),
      );
      const r = await register(s, { url: 'configured', batch_size: '2', max_batch_delay: '500' });
      assert.deepEqual([r.status, r.json()], [200, { status: 'Workers scaled' }]);
      const d = (await http(M, 'GET', '/models/configured')).json();
      assert.deepEqual([d.batchSize, d.maxBatchDelay, d.minWorkers, d.maxWorkers, d.workers.length], [4, 20, 1, 2, 1]);
      assert.equal((await http(I, 'POST', '/predictions/configured', 'x')).text, 'OK');
      assert.equal((await http(M, 'DELETE', '/models/configured')).status, 200);
    },
  );

  await t.test('describe: MMS field order, workers with id, startTime, status, gpu, memoryUsage, pid', async (t) => {
    const { s, M } = await fresh(t);
    assert.equal((await registerPy(s, 'noop', 'noop:handle')).status, 200);
    const r = await http(M, 'GET', '/models/noop/');
    assert.equal(r.status, 200);
    const d = r.json();
    assert.deepEqual(Object.keys(d), [
      'modelName',
      'modelUrl',
      'runtime',
      'minWorkers',
      'maxWorkers',
      'batchSize',
      'maxBatchDelay',
      'loadedAtStartup',
      'workers',
    ]);
    assert.deepEqual(
      { ...d, workers: undefined },
      {
        modelName: 'noop',
        modelUrl: 'py',
        runtime: 'python',
        minWorkers: 1,
        maxWorkers: 1,
        batchSize: 1,
        maxBatchDelay: 100,
        loadedAtStartup: false,
        workers: undefined,
      },
    );
    assert.equal(d.workers.length, 1);
    const w = d.workers[0];
    assert.deepEqual(Object.keys(w), ['id', 'startTime', 'status', 'gpu', 'memoryUsage', 'pid']);
    assert.match(w.id, /^\d+-[0-9a-f]{8}$/);
    assert.match(w.startTime, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.equal(w.status, 'READY');
    assert.equal(w.gpu, false);
    assert.ok(w.memoryUsage > 0);
    assert.ok(Number.isInteger(w.pid));
    assert.deepEqual((await http(M, 'GET', '/models/nosuch')).json(), notFound('Model not found: nosuch'));
  });

  await t.test('scale: check order, defaults, 200/202, describe follows', async (t) => {
    const { s, M, I } = await fresh(t);
    assert.equal((await registerPy(s, 'noop', 'noop:handle')).status, 200);
    assert.deepEqual(
      (await http(M, 'PUT', '/models/nosuch?min_worker=3&max_worker=2')).json(),
      bad('max_worker cannot be less than min_worker.'),
    );
    assert.deepEqual((await http(M, 'PUT', '/models/nosuch')).json(), notFound('Model not found: nosuch'));
    const up = await http(M, 'PUT', '/models/noop?min_worker=2&synchronous=true');
    assert.deepEqual([up.status, up.json()], [200, { status: 'Workers scaled' }]);
    let d = (await http(M, 'GET', '/models/noop')).json();
    assert.deepEqual([d.minWorkers, d.maxWorkers, d.workers.length], [2, 2, 2]);
    // no params: async scale to 1 worker
    const down = await http(M, 'PUT', '/models/noop');
    assert.deepEqual([down.status, down.json()], [202, { status: 'Processing worker updates...' }]);
    d = (await http(M, 'GET', '/models/noop')).json();
    assert.deepEqual([d.minWorkers, d.maxWorkers], [1, 1]);
    const neg = await http(M, 'PUT', '/models/noop?min_worker=-1&max_worker=0');
    assert.deepEqual([neg.status, neg.json()], [400, bad('Invalid value for min_worker: "-1"; expected an integer from 0 to 256.')]);
    assert.equal((await http(I, 'POST', '/predictions/noop', 'x')).text, 'OK');
  });

  await t.test('list: sorted, limit and next_page_token exactly as MMS', async (t) => {
    const { s, M } = await fresh(t);
    // five models, registered out of order, without workers
    for (const name of ['noop', 'idle', 'later', 'batched', 'lenient']) {
      assert.equal((await register(s, { url: 'py', model_name: name, handler: 'noop:handle' })).status, 200);
    }
    const all = (await http(M, 'GET', '/models')).json();
    const names = all.models.map((m: { modelName: string }) => m.modelName);
    assert.deepEqual(names, [...names].sort());
    assert.equal(all.nextPageToken, undefined);
    assert.deepEqual(
      all.models.find((m: { modelName: string }) => m.modelName === 'noop'),
      { modelName: 'noop', modelUrl: 'py' },
    );
    const n = names.length;
    const p1 = (await http(M, 'GET', '/models?limit=2')).json();
    assert.deepEqual([p1.nextPageToken, p1.models.length], ['2', 2]);
    const p2 = (await http(M, 'GET', `/models?limit=2&next_page_token=${n - 2}`)).json();
    assert.deepEqual([p2.nextPageToken, p2.models.length], [String(n), 2], 'token+limit == total still gives a token');
    assert.deepEqual((await http(M, 'GET', `/models?next_page_token=${n + 5}`)).text, '{\n  "models": []\n}\n');
    const bogus = (await http(M, 'GET', '/models?limit=abc&next_page_token=-4')).json();
    assert.equal(bogus.models.length, n);
  });

  await t.test('unregister: 200 Model "X" unregistered, then 404', async (t) => {
    const { s, M, I } = await fresh(t);
    assert.equal((await register(s, { url: 'py', model_name: 'idle', handler: 'noop:handle' })).status, 200);
    const r = await http(M, 'DELETE', '/models/idle?whatever=1');
    assert.deepEqual([r.status, r.json()], [200, { status: 'Model "idle" unregistered' }]);
    assert.deepEqual((await http(M, 'DELETE', '/models/idle')).json(), notFound('Model not found: idle'));
    assert.equal((await http(I, 'POST', '/predictions/idle')).status, 404);
  });

  await t.test('405 and 404 on management paths', async (t) => {
    const { s, M } = await fresh(t);
    assert.equal((await register(s, { url: 'py', model_name: 'noop', handler: 'noop:handle' })).status, 200);
    assert.equal((await http(M, 'PUT', '/models')).status, 405);
    assert.equal((await http(M, 'DELETE', '/models')).status, 405);
    assert.equal((await http(M, 'POST', '/models/noop')).status, 405);
    assert.equal((await http(M, 'GET', '/models/noop/extra')).status, 404);
    assert.equal((await http(M, 'POST', '/predictions/noop')).status, 404, 'inference routes are not on the management port');
  });

  await t.test('concurrent register/unregister of one name: exactly one register wins, state stays consistent', async (t) => {
    const { s, M, I } = await fresh(t);
    const results = await Promise.all([
      registerPy(s, 'race', 'noop:handle'),
      registerPy(s, 'race', 'noop:handle'),
      registerPy(s, 'race', 'noop:handle'),
    ]);
    const statuses = results.map((r) => r.status).sort();
    assert.deepEqual(statuses, [200, 409, 409]);
    const [del, pred] = await Promise.all([http(M, 'DELETE', '/models/race'), http(I, 'POST', '/predictions/race', 'x')]);
    assert.equal(del.status, 200);
    assert.ok([200, 404, 503].includes(pred.status), `prediction during unregister: ${pred.status}`);
    assert.equal((await http(M, 'GET', '/models/race')).status, 404);
    const again = await registerPy(s, 'race', 'noop:handle');
    assert.equal(again.status, 200);
    assert.equal((await http(I, 'POST', '/predictions/race', 'x')).text, 'OK');
  });

  await t.test('a model whose workers cannot start: 500 Failed to start workers and the model is gone', async (t) => {
    const { s, M } = await fresh(t);
    const r = await registerPy(s, 'broken', 'load_fail:handle');
    assert.deepEqual([r.status, r.json()], [500, { code: 500, type: 'InternalServerException', message: 'Failed to start workers' }]);
    assert.equal((await http(M, 'GET', '/models/broken')).status, 404);
    const oom = await registerPy(s, 'broken', 'load_fail:memory');
    assert.equal(oom.status, 507);
    assert.equal(oom.json().message, 'Failed to start workers');
    assert.equal((await http(M, 'GET', '/models/broken')).status, 404);
  });
});

test('remote urls: downloaded only when allowed_urls matches; MMS download errors', async (t) => {
  // a tiny web server with one archive
  const dir = await tempDir(t);
  const src = join(dir, 'src');
  await mkdir(join(src, 'MAR-INF'), { recursive: true });
  await writeFile(join(src, 'noop.py'), 'def handle(d, c):\n    return None if d is None else ["remote"] * len(d)\n');
  await writeFile(
    join(src, 'MAR-INF', 'MANIFEST.json'),
    JSON.stringify({ runtime: 'python', model: { modelName: 'remote', handler: 'noop:handle' } }),
  );
  execFileSync('python3', [
    '-c',
    `import shutil; shutil.make_archive(${JSON.stringify(join(dir, 'remote'))}, 'zip', ${JSON.stringify(src)})`,
  ]);
  const mar = await readFile(join(dir, 'remote.zip'));
  const web = createServer((req, res) => {
    if (req.url === '/models/remote.mar') res.end(mar);
    else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', resolve));
  t.after(() => web.close());
  const base = `http://127.0.0.1:${(web.address() as AddressInfo).port}`;

  const s = await startServer(t, { props: { allowed_urls: `${base.replace(/\./g, '\\\\.')}/models/.*` } });
  const url = `${base}/models/remote.mar`;
  const r = await register(s, { url, initial_workers: 1 });
  assert.deepEqual([r.status, r.json()], [200, { status: 'Workers scaled' }]);
  assert.equal((await http(s.inference, 'POST', '/predictions/remote', 'x')).text, 'remote');
  assert.equal((await http(s.management, 'GET', '/models/remote')).json().modelUrl, url);
  const missing = await register(s, { url: `${base}/models/missing.mar` });
  assert.deepEqual(
    [missing.status, missing.json()],
    [400, { code: 400, type: 'DownloadModelException', message: `Failed to download model from: ${base}/models/missing.mar, code: 404` }],
  );
  const other = await register(s, { url: `${base}/elsewhere/remote.mar` });
  assert.equal(other.status, 404);
  assert.equal(other.json().message, `Given URL ${base}/elsewhere/remote.mar does not match any allowed URL(s)`);
});
