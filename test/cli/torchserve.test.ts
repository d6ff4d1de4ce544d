/**
 * The `torchserve` command as a TorchServe user runs it: `--start --ts-config --model-store --models`, a key
 * file and a pid file where TorchServe keeps them, `--stop` without other flags, and the flags it refuses or
 * ignores. Real processes; TMPDIR points the pid file into the test's directory.
 */
import assert from 'node:assert/strict';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { createArchive } from '../../src/archive/pack.js';
import { packagePath } from '../../src/util/package-info.js';
import { FIXTURES, run, server, tempDir } from '../helpers/util.js';
import { http } from '../server/server-helpers.js';

const TORCHSERVE_BIN = packagePath('bin', 'torchserve.js');

test('torchserve --start / --stop: TorchServe flags, key file and pid file where TorchServe has them', async (t) => {
  // registered before the temp dir's removal, so it runs first: a server a failed assertion left running stops
  let dir = '';
  t.after(() => (dir ? run(process.execPath, [TORCHSERVE_BIN, '--stop'], { cwd: dir, env: { TMPDIR: dir } }) : undefined));
  dir = await tempDir(t, 'mar-ts-cli-');
  const store = join(dir, 'model_store');
  await createArchive({ modelName: 'noop', handler: 'noop:handle', modelPath: join(FIXTURES, 'handlers', 'python'), exportPath: store });
  await writeFile(
    join(dir, 'config.properties'),
    'inference_address=http://127.0.0.1:0\nmanagement_address=http://127.0.0.1:0\nmetrics_address=http://127.0.0.1:0\n' +
      'default_workers_per_model=1\nnumber_of_netty_threads=4\n',
  );
  const env = { TMPDIR: dir, MAR_CACHE_DIR: join(dir, 'cache') };
  const torchserve = (args: string[]) => run(process.execPath, [TORCHSERVE_BIN, ...args], { cwd: dir, env });

  const started = await torchserve([
    '--start',
    '--ts-config',
    'config.properties',
    '--model-store',
    store,
    '--models',
    'noop=noop.mar',
    '--ncs',
    '--log-config',
    'log4j2.xml',
  ]);
  assert.equal(started.code, 0, started.stderr);
  assert.match(started.stderr, /--log-config is ignored/);
  assert.match(started.stdout, /stop with: torchserve --stop/);
  const management = /management API: (\S+)/.exec(started.stdout)![1]!;
  const inference = /inference API: (\S+)/.exec(started.stdout)![1]!;
  assert.ok(await stat(join(dir, '.model_server.pid')), 'the pid file is in the temp dir');
  assert.equal((await stat(join(dir, 'key_file.json'))).mode & 0o777, 0o600);
  const keys = JSON.parse(await readFile(join(dir, 'key_file.json'), 'utf8'));
  const list = await http(management, 'GET', '/models', undefined, { authorization: `Bearer ${keys.management.key}` });
  assert.deepEqual(list.json(), { models: [{ modelName: 'noop', modelUrl: 'noop.mar' }] });
  const predicted = await http(inference, 'POST', '/predictions/noop', 'x', { authorization: `Bearer ${keys.inference.key}` });
  assert.equal(predicted.text, 'OK');
  const log = await readFile(join(dir, 'logs', 'model_server.log'), 'utf8');
  assert.match(log, /Config key number_of_netty_threads is not used by model-server; ignored/);

  const twice = await torchserve(['--start', '--model-store', store]);
  assert.equal(twice.code, 1);
  assert.match(twice.stderr, /already running .*stop it with: torchserve --stop/);

  const stopped = await torchserve(['--stop']);
  assert.equal(stopped.code, 0, stopped.stderr);
  await assert.rejects(stat(join(dir, '.model_server.pid')), { code: 'ENOENT' });
  await assert.rejects(stat(join(dir, 'key_file.json')), { code: 'ENOENT' });
  const notRunning = await torchserve(['--stop']);
  assert.equal(notRunning.code, 1);
  assert.match(notRunning.stderr, /not currently running/);
});

test('torchserve refuses what it cannot do, with one line and exit 2', async (t) => {
  const dir = await tempDir(t, 'mar-ts-cli-');
  const env = { TMPDIR: dir };
  for (const [args, why] of [
    [['--plugins-path', 'plugins'], /--plugins-path is not supported: TorchServe plugins are Java classes/],
    [['--start', '--stop'], /argument --stop: not allowed with argument --start/],
    [['--start'], /Missing mandatory parameter --model-store/],
  ] as const) {
    const r = await run(process.execPath, [TORCHSERVE_BIN, ...args], { cwd: dir, env });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, why);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
  const both = await server(['start', '--ts-config', 'a.properties', '--config', 'b.properties'], { cwd: dir });
  assert.equal(both.code, 2);
  assert.match(both.stderr, /--ts-config and --config\/--mms-config name two config files/);
});
