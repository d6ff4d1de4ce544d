/**
 * The workers of predict's model and of the server's startup models are spawned while the model is opened
 * (worker-prespawn.ts): a model that opens uses that process (one interpreter started, no second), and a model
 * that fails to open gives today's one-line error and leaves no process behind.
 */

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { lineWaiter } from '../../bench/line-waiter.js';
import { packagePath } from '../../src/util/package-info.js';
import { alive, noopModel, recordingPython } from '../helpers/early-workers.js';
import { archiver, SERVER_BIN, server } from '../helpers/util.js';

const TORCHSERVE_BIN = packagePath('bin', 'torchserve.js');

test('predict starts one interpreter for its model, spawned before the model is opened', async (t) => {
  const { dir, python, pids } = await recordingPython(t);
  const r = await server(['predict', await noopModel(dir, 'm'), '--data', 'x', '--python', python, '--quiet'], {
    env: { ...process.env, MAR_CACHE_DIR: join(dir, 'cache') },
  });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'OK');
  assert.equal((await pids()).length, 1);
});

test('predict of an archive, extracted then from the cache: one interpreter each run', async (t) => {
  const { dir, python, pids } = await recordingPython(t);
  const made = await archiver([
    'create',
    '--model-name',
    'arc',
    '--model-path',
    await noopModel(dir, 'src'),
    '--handler',
    'noop:handle',
    '--export-path',
    dir,
  ]);
  assert.equal(made.code, 0, made.stderr);
  const env = { ...process.env, MAR_CACHE_DIR: join(dir, 'cache') };
  for (const run of [1, 2]) {
    const r = await server(['predict', join(dir, 'arc.mar'), '--data', 'x', '--python', python, '--quiet'], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'OK');
    assert.equal((await pids()).length, run);
  }
});

test('predict of an archive that cannot be opened: the one-line error, and the early worker is gone', async (t) => {
  const { dir, python, pids } = await recordingPython(t);
  await writeFile(join(dir, 'bad.mar'), Buffer.from('PK\x03\x04garbage that is not a zip', 'latin1'));
  const r = await server(['predict', join(dir, 'bad.mar'), '--data', 'x', '--python', python], {
    env: { ...process.env, MAR_CACHE_DIR: join(dir, 'cache') },
  });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^error: .*bad\.mar is not a readable zip .*rebuild or re-download it\n$/);
  // The worker is spawned ahead of the model (the tests above show that path is taken), but the archive fails so
  // soon that it may be killed before its wrapper has recorded its pid: at most one start, and none left running.
  const started = await pids();
  assert.ok(started.length <= 1, `one interpreter at most: ${started.join(', ')}`);
  for (const pid of started) assert.equal(alive(pid), false, `worker ${pid} outlived predict`);
});

// a server test waits for log lines: a line that never comes fails the test after a minute instead of hanging the run
const SERVER_TEST = { timeout: 60_000 };

test('start --models: a good model adopts its early worker, a broken one leaves none behind', SERVER_TEST, async (t) => {
  const { dir, python, pids } = await recordingPython(t);
  const store = join(dir, 'store');
  await noopModel(store, 'good');
  await writeFile(join(store, 'bad.mar'), Buffer.from('PK\x03\x04garbage that is not a zip', 'latin1'));
  const cfg = join(dir, 'config.properties');
  await writeFile(
    cfg,
    `inference_address=http://127.0.0.1:0\nmanagement_address=http://127.0.0.1:0\nmodel_store=${store}\ndefault_workers_per_model=1\npython=${python}\n`,
  );
  const proc = spawn(process.execPath, [SERVER_BIN, 'start', '--config', cfg, '--models', 'good=good,bad=bad.mar'], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, MAR_CACHE_DIR: join(dir, 'cache') },
  });
  t.after(async () => {
    if (proc.exitCode === null) {
      proc.kill('SIGTERM');
      await new Promise((r) => proc.once('exit', r));
    }
  });
  const waitFor = lineWaiter(proc);
  const url = /bind to: (\S+)/.exec(await waitFor(/Inference API bind to/))![1]!;
  await waitFor(/1 worker process\(es\) started ahead of their model were not used; stopped them/);
  assert.match(await waitFor(/Failed to load model bad/), /bad\.mar is not a readable zip/);
  const started = await pids();
  assert.equal(started.length, 2, 'one interpreter per startup model, none spawned again');
  assert.deepEqual(started.map(alive).sort(), [false, true]);
  const ping = await fetch(`${url}/ping`);
  assert.equal(ping.status, 200);
  const res = await fetch(`${url}/predictions/good`, { method: 'POST', body: 'x' });
  assert.equal(await res.text(), 'OK');
});

/**
 * A server process (`bin` with `args(cfg)`) whose config serves the noop model `good` from `<dir>/store` with the
 * recording python and `props`; killed when the test ends.
 */
async function startGood(t: TestContext, bin: string, args: (cfg: string) => string[], props = '') {
  const { dir, python, pids } = await recordingPython(t);
  const store = join(dir, 'store');
  await noopModel(store, 'good');
  const cfg = join(dir, 'config.properties');
  await writeFile(
    cfg,
    'inference_address=http://127.0.0.1:0\nmanagement_address=http://127.0.0.1:0\nmetrics_address=http://127.0.0.1:0\n' +
      `${props}metrics_location=${join(dir, 'logs')}\nmodel_store=${store}\ndefault_workers_per_model=1\npython=${python}\n`,
  );
  const proc = spawn(process.execPath, [bin, ...args(cfg)], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, MAR_CACHE_DIR: join(dir, 'cache') },
  });
  const exited = new Promise((r) => proc.once('exit', r));
  t.after(async () => {
    if (proc.exitCode === null) {
      proc.kill('SIGTERM');
      await exited;
    }
  });
  return { dir, proc, exited, pids, waitFor: lineWaiter(proc) };
}

/** The model `good` answers, from the one interpreter spawned for it ahead of time (none left unused). */
async function servedByEarlyWorker(server: Awaited<ReturnType<typeof startGood>>): Promise<void> {
  const lines: string[] = [];
  server.proc.stdout.on('data', (b: Buffer) => lines.push(...b.toString().split('\n')));
  const url = /bind to: (\S+)/.exec(await server.waitFor(/Inference API bind to/))![1]!;
  const res = await fetch(`${url}/predictions/good`, { method: 'POST', body: 'x' });
  assert.equal(await res.text(), 'OK');
  assert.equal((await server.pids()).length, 1, 'the early worker served the model: no second interpreter');
  assert.ok(!lines.some((l) => /started ahead of their model were not used/.test(l)), lines.join('\n'));
}

for (const mode of ['prometheus', 'log'] as const) {
  test(
    `start --models with metrics_mode=${mode}: the early worker is launched as the model's own (adopted) and its metrics arrive`,
    SERVER_TEST,
    async (t) => {
      const { dir, proc, exited, pids, waitFor } = await startGood(
        t,
        SERVER_BIN,
        (cfg) => ['start', '--config', cfg, '--models', 'good=good'],
        `metrics_mode=${mode}\n`,
      );
      const url = /bind to: (\S+)/.exec(await waitFor(/Inference API bind to/))![1]!;
      const metricsUrl = /bind to: (\S+)/.exec(await waitFor(/Metrics API bind to/))![1]!;
      const res = await fetch(`${url}/predictions/good`, { method: 'POST', body: 'x' });
      assert.equal(await res.text(), 'OK');
      assert.equal((await pids()).length, 1, 'the early worker served the model: no second interpreter');
      if (mode === 'prometheus') {
        assert.match(await (await fetch(`${metricsUrl}/metrics`)).text(), /^PredictionTime\{ModelName="good",Level="Model",/m);
      } else {
        proc.kill('SIGTERM'); // the log lines are written by the time it exits
        await exited;
        assert.match(
          await readFile(join(dir, 'logs', 'model_metrics.log'), 'utf8'),
          / - PredictionTime\.ms:[\d.]+\|#ModelName:good,Level:Model\|/,
        );
      }
    },
  );
}

test('torchserve --foreground --models: the model is served by the one interpreter spawned ahead of it', SERVER_TEST, async (t) => {
  const server = await startGood(t, TORCHSERVE_BIN, (cfg) => [
    '--start',
    '--foreground',
    '--ts-config',
    cfg,
    '--models',
    'good=good',
    '--ncs',
    '--dt',
  ]);
  await servedByEarlyWorker(server);
});

test('model_snapshot (KServe sample config): its model is served by the one interpreter spawned ahead of it', SERVER_TEST, async (t) => {
  const snapshot = {
    name: 'startup.cfg',
    modelCount: 1,
    models: {
      good: {
        '1.0': {
          defaultVersion: true,
          marName: 'good',
          minWorkers: 1,
          maxWorkers: 1,
          batchSize: 1,
          maxBatchDelay: 100,
          responseTimeout: 120,
        },
      },
    },
  };
  const server = await startGood(
    t,
    TORCHSERVE_BIN,
    (cfg) => ['--foreground', '--ts-config', cfg, '--ncs', '--dt'],
    `model_snapshot=${JSON.stringify(snapshot)}\n`,
  );
  await servedByEarlyWorker(server);
});
