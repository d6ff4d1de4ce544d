/**
 * The early entry (cli/early-spawn.ts, run by bin/model-server.js before the CLI loads): the command lines it reads
 * get their worker spawned there and taken by the command (one interpreter); those it does not read are left to the
 * CLI; workers it spawned for a command line the CLI then refuses are gone when the process ends, which it does at
 * once (not after the worker's accept timeout).
 */

import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { configOptions } from '../../src/cli/commands/start.js';
import { torchServeStartOptions } from '../../src/cli/commands/torchserve-options.js';
import { discardEarlySpawn, earlySpawn, takeEarlyPredict, takeEarlyStart } from '../../src/cli/early-spawn.js';
import { planEntrypoint } from '../../src/cli/entrypoint-plan.js';
import { prespawnedCount } from '../../src/runtime/worker-prespawn.js';
import { alive, noopModel, recordingPython } from '../helpers/early-workers.js';
import { server } from '../helpers/util.js';

test('a predict command line it reads: one worker spawned, taken by the same key, discarded for another', async (t) => {
  const { dir, python } = await recordingPython(t);
  const model = await noopModel(dir, 'm');
  const key = { model, python, sizes: [1] };
  await earlySpawn(['predict', model, '--data', 'x', '--python', python, '--quiet']);
  assert.equal(prespawnedCount(), 1);
  const taken = await takeEarlyPredict({ ...key, runtime: undefined, batchSize: undefined, timeout: undefined, cacheDir: undefined });
  assert.equal(taken?.pids.length, 1);
  assert.equal(await taken!.discard(), 1);
  assert.equal(alive(taken!.pids[0]!), false);

  await earlySpawn(['predict', model, '--data=xy', `--python=${python}`]);
  assert.equal(prespawnedCount(), 1);
  assert.equal(await takeEarlyPredict({ ...key, sizes: [1] }), undefined, 'another input size: not this run');
  assert.equal(prespawnedCount(), 0, 'the unmatched worker was discarded (killed)');
});

test('command lines it does not read spawn nothing early', async (t) => {
  const { dir, python, pids } = await recordingPython(t);
  const model = await noopModel(dir, 'm');
  for (const argv of [
    ['predict', model, '--data', 'x', '--python', python, '--bogus'],
    ['predict', model, '--input', '-', '--python', python],
    ['predict', model, 'extra', '--data', 'x', '--python', python],
    ['predict', model, '--data', 'x', '--python', python, '--batch-size', '0'],
    ['predict', model, '-qd', 'x', '--python', python],
    ['start', '--stop'],
    ['start', '--start', '--models', 'm'],
    ['cache', 'list'],
  ]) {
    await earlySpawn(argv);
    assert.equal(prespawnedCount(), 0, argv.join(' '));
  }
  await discardEarlySpawn();
  assert.deepEqual(await pids(), []);
});

test('a command line it read but the CLI refuses: the usage error, at once, and no worker left', async (t) => {
  const { dir, python, pids } = await recordingPython(t);
  const model = await noopModel(dir, 'm');
  // --header's value is not the early entry's business: commander refuses it after the early spawn
  const r = await server(['predict', model, '--data', 'x', '--python', python, '--header', 'no colon'], { timeoutMs: 30_000 });
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /^error: .*expected 'Name: value', got 'no colon'\./);
  // the early entry spawned the worker, but commander refuses the line so soon that the worker may be killed
  // before its wrapper has recorded its pid: at most one start, and none left running
  const started = await pids();
  assert.ok(started.length <= 1, `one interpreter at most: ${started.join(', ')}`);
  for (const pid of started) assert.equal(alive(pid), false, `worker ${pid} outlived the command`);
});

test('start with a flag it does not read: the usage error and no worker', { timeout: 60_000 }, async (t) => {
  const { dir, python, pids } = await recordingPython(t);
  await noopModel(join(dir, 'store'), 'm');
  const cfg = join(dir, 'config.properties');
  await writeFile(
    cfg,
    `inference_address=http://127.0.0.1:0\nmanagement_address=http://127.0.0.1:0\nmodel_store=${join(dir, 'store')}\npython=${python}\n`,
  );
  const refused = await server(['start', '--config', cfg, '--models', 'm', '--bogus'], { timeoutMs: 30_000 });
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /unknown option '--bogus'/);
  assert.deepEqual(await pids(), []);
});

test('a torchserve --foreground command line: its startup worker is spawned early and taken by the same options', async (t) => {
  const { dir, python } = await recordingPython(t);
  await noopModel(join(dir, 'store'), 'm');
  const cfg = join(dir, 'config.properties');
  await writeFile(cfg, `model_store=${join(dir, 'store')}\ndefault_workers_per_model=1\npython=${python}\n`);
  for (const argv of [['--stop'], ['--start', '--ts-config', cfg, '--models', 'm'], ['--foreground', '--ppath', 'x', '--ts-config', cfg]]) {
    await earlySpawn(argv, 'torchserve');
    assert.equal(prespawnedCount(), 0, `nothing early for: torchserve ${argv.join(' ')}`);
  }
  await earlySpawn(
    ['--start', '--foreground', '--ts-config', cfg, '--models', 'm', '--ncs', '--dt', '--log-config', 'x.xml'],
    'torchserve',
  );
  assert.equal(prespawnedCount(), 1);
  // what torchserve-main gives runStart for the same line (commander's flags)
  const o = torchServeStartOptions({
    start: true,
    foreground: true,
    tsConfig: cfg,
    models: ['m'],
    configSnapshots: false,
    disableTokenAuth: true,
  });
  const taken = await takeEarlyStart(configOptions(o));
  assert.ok(taken !== null, 'the command takes the early workers');
  assert.equal(await (await taken.group).discard(), 1);
});

test('a container entrypoint command line: its startup worker is spawned early and taken by the planned start', async (t) => {
  const { dir, python } = await recordingPython(t);
  await noopModel(join(dir, 'model-store'), 'm');
  await mkdir(join(dir, 'config'));
  await writeFile(join(dir, 'config', 'config.properties'), `load_models=m\ndefault_workers_per_model=1\npython=${python}\n`);
  await earlySpawn(['--healthcheck', '--model-dir', dir], 'entrypoint');
  assert.equal(prespawnedCount(), 0, 'the health check starts nothing');
  // kserve-torchserve's runtime passes `torchserve` first
  await earlySpawn(['torchserve', '--start', '--model-dir', dir, '--ncs'], 'entrypoint');
  assert.equal(prespawnedCount(), 1);
  const taken = await takeEarlyStart(configOptions(planEntrypoint({ start: true, modelDir: dir, configSnapshots: false }).start));
  assert.ok(taken !== null, 'the command takes the early workers');
  assert.equal(await (await taken.group).discard(), 1);
});

test('a config with model_snapshot: its models get their workers early (the snapshot replaces load_models)', async (t) => {
  const { dir, python } = await recordingPython(t);
  await noopModel(join(dir, 'store'), 'm');
  const snapshot = { models: { m: { '1.0': { marName: 'm', minWorkers: 2, maxWorkers: 2, batchSize: 1, maxBatchDelay: 100 } } } };
  const cfg = join(dir, 'config.properties');
  for (const loadModels of ['', 'load_models=other\n']) {
    await writeFile(cfg, `model_store=${join(dir, 'store')}\n${loadModels}python=${python}\nmodel_snapshot=${JSON.stringify(snapshot)}\n`);
    await earlySpawn(['--foreground', '--ts-config', cfg, '--ncs', '--dt'], 'torchserve');
    assert.equal(prespawnedCount(), 2, `the snapshot's minWorkers for its model (${loadModels || 'no load_models'})`);
    await discardEarlySpawn();
    assert.equal(prespawnedCount(), 0);
  }
});
