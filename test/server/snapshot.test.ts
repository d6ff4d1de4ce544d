import assert from 'node:assert/strict';
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseProperties } from '../../src/server/config.js';
import type { Snapshot } from '../../src/server/snapshot.js';
import { formatSnapshotFile, lastSnapshotFile, snapshotFileName } from '../../src/server/snapshot.js';
import { startModelServer } from '../../src/server/start-server.js';
import { http, type RunningServer, register, startServer, versionedModel } from './server-helpers.js';

/** The snapshot files in `dir`, oldest first. */
async function snapshotFiles(dir: string): Promise<string[]> {
  return (await readdir(dir).catch(() => [] as string[])).sort();
}

/** Reads the newest `-snapshot.cfg` until `ready` accepts its model_snapshot: files are written after the response. */
async function newestSnapshot(
  dir: string,
  ready: (s: Snapshot) => boolean,
): Promise<{ file: string; props: Map<string, string>; snapshot: Snapshot }> {
  const deadline = performance.now() + 15_000;
  for (;;) {
    const files = (await snapshotFiles(dir)).filter((f) => f.endsWith('-snapshot.cfg'));
    const file = files[files.length - 1];
    if (file !== undefined) {
      const props = parseProperties(await readFile(join(dir, file), 'utf8'));
      const snapshot = JSON.parse(props.get('model_snapshot')!) as Snapshot;
      if (ready(snapshot)) return { file, props, snapshot };
    }
    if (performance.now() > deadline) assert.fail(`no snapshot in ${dir} became ready: ${files.join(', ')}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** TorchServe's dialect (snapshots on by default), without tokens so the test needs no keys. */
const TS = { load: { dialect: 'torchserve', disableTokenAuth: true, enableModelApi: true } } as const;

const describeAll = async (s: Pick<RunningServer, 'management'>) =>
  (await http(s.management, 'GET', '/models/m/all')).json().map((d: Record<string, unknown>) => ({
    version: d['modelVersion'],
    isDefault: d['isDefault'],
    min: d['minWorkers'],
    max: d['maxWorkers'],
    workers: (d['workers'] as unknown[]).length,
    batchSize: d['batchSize'],
    maxBatchDelay: d['maxBatchDelay'],
  }));

test('snapshot file names and format: Java Properties with model_snapshot; the newest file by time stamp', () => {
  assert.equal(snapshotFileName('snapshot', new Date(2024, 0, 31, 23, 59, 58, 7)), '20240131235958007-snapshot.cfg');
  const snapshot: Snapshot = { name: 'x-snapshot.cfg', modelCount: 0, created: Date.UTC(2024, 0, 1, 12), models: {} };
  const text = formatSnapshotFile(
    new Map([
      ['b key', ' a=b:c#'],
      ['a', 'x\ty'],
    ]),
    snapshot,
  );
  const lines = text.split('\n');
  assert.deepEqual(lines.slice(0, 4), ['#Saving snapshot', '#Mon Jan 01 12:00:00 UTC 2024', 'a=x\\ty', 'b\\ key=\\ a\\=b\\:c\\#']);
  const back = parseProperties(text);
  assert.equal(back.get('b key'), ' a=b:c#');
  assert.deepEqual(JSON.parse(back.get('model_snapshot')!), snapshot);
  assert.equal(lastSnapshotFile('/nonexistent'), null);
});

test('model_snapshot: every management change writes a snapshot; a new server started from it has the same models', async (t) => {
  const s = await startServer(t, TS);
  const dir = join(s.dir, 'logs', 'config');
  const started = await snapshotFiles(dir);
  assert.equal(started.length, 1);
  assert.match(started[0]!, /^\d{17}-startup\.cfg$/);

  await versionedModel(s.store, 'm-v1', 'm', '1.0', 'v1');
  await versionedModel(s.store, 'm-v2', 'm', '2.0', 'v2');
  const ok = async (p: Promise<{ status: number; text: string }>) => assert.equal((await p).status, 200, (await p).text);
  await ok(register(s, { url: 'm-v1', initial_workers: 1, batch_size: 3, max_batch_delay: 50, response_timeout: 9, synchronous: true }));
  await ok(register(s, { url: 'm-v2' }));
  await ok(register(s, { url: 'py', model_name: 'other', handler: 'noop:handle', initial_workers: 1, synchronous: true }));
  await ok(http(s.management, 'PUT', '/models/m/1.0?min_worker=2&max_worker=3&synchronous=true'));
  await ok(http(s.management, 'PUT', '/models/m/2.0/set-default'));
  await ok(http(s.management, 'DELETE', '/models/other'));

  const { file, props: saved, snapshot } = await newestSnapshot(dir, (x) => x.modelCount === 2 && x.models['m']?.['1.0']?.minWorkers === 2);
  assert.match(file, /^\d{17}-snapshot\.cfg$/);
  assert.equal(snapshot.name, file);
  assert.deepEqual(snapshot.models, {
    m: {
      '1.0': {
        defaultVersion: false,
        marName: 'm-v1',
        minWorkers: 2,
        maxWorkers: 3,
        batchSize: 3,
        maxBatchDelay: 50,
        responseTimeout: 9,
        runtimeType: 'python',
      },
      '2.0': {
        defaultVersion: true,
        marName: 'm-v2',
        minWorkers: 0,
        maxWorkers: 0,
        batchSize: 1,
        maxBatchDelay: 100,
        responseTimeout: 120,
        runtimeType: 'python',
      },
    },
  });
  // the server's configuration is in the file too (TorchServe restarts from it with --ts-config)
  assert.equal(saved.get('model_store'), s.store);
  assert.equal(saved.get('metrics_address'), 'http://127.0.0.1:0');
  const all = await snapshotFiles(dir);
  assert.ok(all.filter((f) => f.endsWith('-snapshot.cfg')).length >= 2, all.join(', '));
  assert.deepEqual(
    all.filter((f) => !/^\d{17}-(startup|snapshot)\.cfg$/.test(f)),
    [],
    'nothing half-written is left',
  );
  const before = await describeAll(s);
  await s.stop();
  assert.ok((await snapshotFiles(dir)).some((f) => f.endsWith('-shutdown.cfg')));

  await t.test('restarted with model_snapshot set: the same models, versions, defaults, workers, batching and timeouts', async (t) => {
    const json = JSON.stringify(snapshot); // one line, for a config.properties value
    const again = await startServer(t, { ...TS, props: { model_snapshot: json, load_models: 'py', model_store: s.store } });
    assert.deepEqual(await describeAll(again), before);
    assert.deepEqual(before, [
      { version: '1.0', isDefault: false, min: 2, max: 3, workers: 2, batchSize: 3, maxBatchDelay: 50 },
      { version: '2.0', isDefault: true, min: 0, max: 0, workers: 0, batchSize: 1, maxBatchDelay: 100 },
    ]);
    assert.equal(again.server.registry.get('m', '1.0')!.runtime.responseTimeoutMs, 9000);
    assert.deepEqual((await http(again.management, 'GET', '/models')).json(), { models: [{ modelName: 'm', modelUrl: 'm-v2' }] });
    assert.equal((await http(again.inference, 'POST', '/predictions/m/1.0', 'x')).text, 'v1');
    assert.equal((await http(again.management, 'GET', '/models/py')).status, 404, 'load_models is ignored when model_snapshot is set');
  });

  await t.test('restarted from the snapshot file itself as the config file (torchserve --ts-config <snapshot>)', async () => {
    const server = await startModelServer({
      ...TS.load,
      configFile: join(dir, file),
      cwd: s.dir,
      log: () => {},
      runtimeOptions: { log: () => {} },
    });
    t.after(() => server.stop(2000));
    const management = server.listeners.find((l) => l.api === 'management')!.url;
    assert.deepEqual(await describeAll({ management }), before);
  });

  await t.test('an archive missing from the model store: the start fails and names it', async (t) => {
    await rm(join(s.store, 'm-v2'), { recursive: true });
    await assert.rejects(
      startServer(t, { ...TS, props: { model_snapshot: JSON.stringify(snapshot), model_store: s.store } }),
      /model_snapshot: the archive m-v2 of model m, version 2\.0 is not in the model store/,
    );
  });
});
