import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { isInferenceRequest } from '../../src/server/routes/inference.js';
import { isManagementRequest } from '../../src/server/routes/management.js';
import { http, type RunningServer, register, startServer, versionedModel } from './server-helpers.js';

/** A server with `m` registered in 1.0 (store/m-v1, answers v1) and 2.0 (store/m-v2, answers v2), one worker each. */
async function twoVersions(t: TestContext, dialect?: 'torchserve'): Promise<{ s: RunningServer; M: string; I: string }> {
  const ts = { load: { dialect: 'torchserve', disableTokenAuth: true, enableModelApi: true } } as const;
  const s = await startServer(t, dialect ? ts : {});
  await versionedModel(s.store, 'm-v1', 'm', '1.0', 'v1');
  await versionedModel(s.store, 'm-v2', 'm', '2.0', 'v2');
  for (const url of ['m-v1', 'm-v2']) {
    const r = await register(s, { url, initial_workers: 1, synchronous: true });
    assert.equal(r.status, 200, r.text);
  }
  return { s, M: s.management, I: s.inference };
}

const versionNotFound = (message: string) => ({ code: 404, type: 'ModelVersionNotFoundException', message });

test('paths: versioned management paths are management requests, not inference ones', () => {
  const seg = (p: string) => p.split('/');
  assert.ok(isManagementRequest(seg('/models/m/1.0')));
  assert.ok(isManagementRequest(seg('/models/m/1.0/set-default')));
  assert.ok(!isManagementRequest(seg('/models/m/1.0/other')));
  assert.ok(!isInferenceRequest(seg('/models/m/1.0')), 'a shared inference+management port must route it to management');
  assert.ok(isInferenceRequest(seg('/models/m/invoke')));
  assert.ok(isInferenceRequest(seg('/predictions/m/1.0')));
});

test('model versions over HTTP (MMS dialect): register, describe, predict, set-default, scale, unregister', async (t) => {
  const { s, M, I } = await twoVersions(t);

  await t.test('the same name and version again: 409 with MMS text', async () => {
    const dup = await register(s, { url: 'm-v1' });
    assert.deepEqual(
      [dup.status, dup.json()],
      [409, { code: 409, type: 'ConflictStatusException', message: 'Model m is already registered.' }],
    );
  });

  await t.test('list shows the name once, with the default version url; describe answers MMS object for the default', async () => {
    assert.deepEqual((await http(M, 'GET', '/models')).json(), { models: [{ modelName: 'm', modelUrl: 'm-v1' }] });
    const d = (await http(M, 'GET', '/models/m')).json();
    assert.equal(Array.isArray(d), false);
    assert.deepEqual([d.modelName, d.modelVersion, d.modelUrl, d.isDefault], ['m', '1.0', 'm-v1', undefined]);
  });

  await t.test('GET /models/m/all lists every version with isDefault; /models/m/{v} one; unknown version 404', async () => {
    const all = (await http(M, 'GET', '/models/m/all')).json();
    assert.deepEqual(
      all.map((d: Record<string, unknown>) => [d['modelVersion'], d['modelUrl'], d['isDefault'], d['minWorkers']]),
      [
        ['1.0', 'm-v1', true, 1],
        ['2.0', 'm-v2', false, 1],
      ],
    );
    const one = (await http(M, 'GET', '/models/m/2.0')).json();
    assert.equal(one.length, 1);
    assert.deepEqual([one[0].modelVersion, one[0].isDefault, one[0].workers.length], ['2.0', false, 1]);
    const bad = await http(M, 'GET', '/models/m/9.9');
    assert.deepEqual([bad.status, bad.json()], [404, versionNotFound('Model version: 9.9 does not exist for model: m')]);
    const noModel = await http(M, 'GET', '/models/nope/all');
    assert.deepEqual([noModel.status, noModel.json().message], [404, 'Model not found: nope']);
  });

  await t.test('/predictions/m goes to the default version, /predictions/m/{v} to that version', async () => {
    assert.equal((await http(I, 'POST', '/predictions/m', 'x')).text, 'v1');
    assert.equal((await http(I, 'POST', '/predictions/m/1.0', 'x')).text, 'v1');
    assert.equal((await http(I, 'POST', '/predictions/m/2.0', 'x')).text, 'v2');
    const bad = await http(I, 'POST', '/predictions/m/9.9', 'x');
    assert.deepEqual([bad.status, bad.json()], [404, versionNotFound('Model version: 9.9 does not exist for model: m')]);
    assert.equal((await http(I, 'POST', '/predictions/nope/1.0', 'x')).json().message, 'Model not found: nope');
  });

  await t.test('set-default moves the default: predictions, list and describe follow; unknown name or version 404', async () => {
    const badVersion = await http(M, 'PUT', '/models/m/9.9/set-default');
    assert.deepEqual([badVersion.status, badVersion.json()], [404, versionNotFound('Model version 9.9 does not exist for model m')]);
    const badName = await http(M, 'PUT', '/models/nope/1.0/set-default');
    assert.deepEqual([badName.status, badName.json().type], [404, 'ModelNotFoundException']);
    assert.equal((await http(M, 'GET', '/models/m/1.0/set-default')).status, 405);
    const ok = await http(M, 'PUT', '/models/m/2.0/set-default');
    assert.deepEqual([ok.status, ok.json()], [200, { status: 'Default version successfully updated for model "m" to "2.0"' }]);
    assert.equal((await http(I, 'POST', '/predictions/m', 'x')).text, 'v2');
    assert.deepEqual((await http(M, 'GET', '/models')).json(), { models: [{ modelName: 'm', modelUrl: 'm-v2' }] });
    assert.equal((await http(M, 'GET', '/models/m')).json().modelVersion, '2.0');
    const flags = (await http(M, 'GET', '/models/m/all')).json().map((d: { isDefault: boolean }) => d.isDefault);
    assert.deepEqual(flags, [false, true]);
  });

  await t.test('PUT /models/m/{v} scales that version only; model_version in the query does too', async () => {
    const r = await http(M, 'PUT', '/models/m/1.0?min_worker=2&synchronous=true');
    assert.deepEqual([r.status, r.json()], [200, { status: 'Workers scaled' }]);
    const q = await http(M, 'PUT', '/models/m?min_worker=0&max_worker=3&synchronous=true&model_version=2.0');
    assert.equal(q.status, 200, q.text);
    const counts = (await http(M, 'GET', '/models/m/all'))
      .json()
      .map((d: { minWorkers: number; maxWorkers: number; workers: [] }) => [d.minWorkers, d.maxWorkers, d.workers.length]);
    assert.deepEqual(counts, [
      [2, 2, 2],
      [0, 3, 1],
    ]);
    const bad = await http(M, 'PUT', '/models/m/9.9?min_worker=1');
    assert.deepEqual([bad.status, bad.json()], [404, versionNotFound('Model version: 9.9 does not exist for model: m')]);
  });

  await t.test('unregister: the default version refuses while others remain (403); then one by one', async () => {
    const dflt = await http(M, 'DELETE', '/models/m/2.0');
    assert.deepEqual(
      [dflt.status, dflt.json()],
      [403, { code: 403, type: 'InvalidModelVersionException', message: 'Cannot remove default version for model m' }],
    );
    const plain = await http(M, 'DELETE', '/models/m');
    assert.equal(plain.status, 403, 'DELETE /models/m removes the default version: refused too');
    const bad = await http(M, 'DELETE', '/models/m/9.9');
    assert.deepEqual([bad.status, bad.json()], [404, versionNotFound('Model version: 9.9 does not exist for model: m')]);
    const v1 = await http(M, 'DELETE', '/models/m/1.0');
    assert.deepEqual([v1.status, v1.json()], [200, { status: 'Model "m" unregistered' }]);
    assert.equal((await http(I, 'POST', '/predictions/m/1.0', 'x')).status, 404);
    assert.equal((await http(I, 'POST', '/predictions/m', 'x')).text, 'v2');
    assert.equal((await http(M, 'DELETE', '/models/m')).status, 200, 'the last version goes with the name');
    assert.equal((await http(M, 'GET', '/models/m')).status, 404);
    assert.deepEqual((await http(M, 'GET', '/models')).json(), { models: [] });
    // the name is free again, in any version
    assert.equal((await register(s, { url: 'm-v2' })).status, 200);
    assert.equal((await http(M, 'GET', '/models/m')).json().modelVersion, '2.0');
  });
});

test('model versions in the TorchServe dialect: describe answers arrays, a duplicate version gets TorchServe text', async (t) => {
  const { s, M } = await twoVersions(t, 'torchserve');
  const d = (await http(M, 'GET', '/models/m')).json();
  assert.ok(Array.isArray(d));
  assert.deepEqual(
    d.map((x: Record<string, unknown>) => [x['modelName'], x['modelVersion'], x['isDefault']]),
    [['m', '1.0', true]],
  );
  const dup = await register(s, { url: 'm-v2' });
  assert.deepEqual(
    [dup.status, dup.json()],
    [409, { code: 409, type: 'ConflictStatusException', message: 'Model version 2.0 is already registered for model m' }],
  );
});
