/**
 * config.properties in TorchServe's dialect (--ts-config): its defaults, TS_<KEY> variables only with
 * enable_envvars_config, `$$VAR$$` that must be set, the command line under the environment, seconds for
 * default_response_timeout, unknown keys reported, and the MMS dialect left as it was.
 */
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { isMarError } from '../../src/errors.js';
import { loadConfig } from '../../src/server/config.js';
import { workerMetrics } from '../../src/server/metrics/worker-metrics.js';
import { tempDir } from '../helpers/util.js';

test('TorchServe dialect defaults: metrics on 8082, model API off, tokens on, snapshots on, seconds, open http(s) urls', async (t) => {
  const dir = await tempDir(t);
  const ts = loadConfig({ cwd: dir, env: {}, dialect: 'torchserve' });
  assert.equal(ts.dialect, 'torchserve');
  assert.equal(ts.metricsAddress?.url, 'http://127.0.0.1:8082');
  assert.equal(ts.metricsMode, 'log');
  assert.equal(ts.enableModelApi, false);
  assert.equal(ts.tokenAuthorization, true);
  assert.equal(ts.tokenExpirationMinutes, 60);
  assert.equal(ts.keyFile, join(dir, 'key_file.json'));
  assert.equal(ts.snapshotsEnabled, true);
  assert.equal(ts.modelSnapshot, null);
  assert.equal(ts.startupTimeoutSeconds, 120);
  assert.equal(ts.defaultResponseTimeoutSeconds, 120, 'TorchServe reads default_response_timeout in seconds');
  assert.equal(ts.allowedUrls.length, 1);
  assert.equal(ts.allowedUrls[0]!.test('https://torchserve.pytorch.org/mar_files/mnist.mar'), true);
  assert.equal(ts.allowedUrls[0]!.test('file:///etc/passwd'), false, 'file:// must be allowed explicitly');
  assert.match(ts.startupWarnings.join('\n'), /limit the set of allowed_urls/);

  const mms = loadConfig({ cwd: dir, env: {} });
  assert.equal(mms.dialect, 'mms');
  assert.equal(mms.metricsAddress, null);
  assert.equal(mms.enableModelApi, true);
  assert.equal(mms.tokenAuthorization, false);
  assert.equal(mms.snapshotsEnabled, false);
  assert.equal(mms.defaultResponseTimeoutSeconds, 7200, 'MMS reads it in minutes, as before');
  assert.deepEqual(mms.allowedUrls, []);
  assert.deepEqual(mms.startupWarnings, []);

  const flags = loadConfig({
    cwd: dir,
    env: {},
    dialect: 'torchserve',
    disableTokenAuth: true,
    enableModelApi: true,
    noConfigSnapshots: true,
  });
  assert.deepEqual([flags.tokenAuthorization, flags.enableModelApi, flags.snapshotsEnabled], [false, true, false]);
});

test('TorchServe dialect: TS_<KEY> only with enable_envvars_config, and then over the command line; TS_CONFIG_FILE', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'ts.properties');
  await writeFile(file, 'disable_token_authorization=false\njob_queue_size=5\n');
  const env = { TS_JOB_QUEUE_SIZE: '9', TS_DISABLE_TOKEN_AUTHORIZATION: 'true', TS_ALLOWED_URLS: 'file:///models/.*' };
  const off = loadConfig({ cwd: dir, env, configFile: file, dialect: 'torchserve' });
  assert.equal(off.jobQueueSize, 5, 'TS_ variables need enable_envvars_config=true');
  assert.equal(off.tokenAuthorization, true);

  await writeFile(file, 'enable_envvars_config=true\ndisable_token_authorization=true\njob_queue_size=5\n');
  const on = loadConfig({ cwd: dir, env: { ...env, TS_DISABLE_TOKEN_AUTHORIZATION: 'false' }, configFile: file, dialect: 'torchserve' });
  assert.equal(on.jobQueueSize, 9);
  assert.equal(on.tokenAuthorization, true, 'the environment wins over the file');
  assert.equal(on.allowedUrls[0]!.test('file:///models/m.mar'), false, 'TS_ALLOWED_URLS needs use_env_allowed_urls=true');
  // TorchServe's precedence: the environment beats --disable-token-auth (test_token_authorization.py#test_priority_env_cmd)
  const cli = loadConfig({
    cwd: dir,
    env: { ...env, TS_DISABLE_TOKEN_AUTHORIZATION: 'false' },
    configFile: file,
    dialect: 'torchserve',
    disableTokenAuth: true,
  });
  assert.equal(cli.tokenAuthorization, true);

  await writeFile(file, 'enable_envvars_config=true\nuse_env_allowed_urls=true\n');
  const urls = loadConfig({ cwd: dir, env, configFile: file, dialect: 'torchserve' });
  assert.equal(urls.allowedUrls[0]!.test('file:///models/m.mar'), true);

  // TS_CONFIG_FILE names the file; MMS_CONFIG_FILE is MMS's
  const viaEnv = loadConfig({ cwd: dir, env: { TS_CONFIG_FILE: file, MMS_CONFIG_FILE: join(dir, 'nosuch') }, dialect: 'torchserve' });
  assert.equal(viaEnv.configFile, file);
  // the MMS dialect keeps MMS_<KEY> without opting in, and ignores TS_
  const mms = loadConfig({ cwd: dir, env: { MMS_JOB_QUEUE_SIZE: '7', TS_JOB_QUEUE_SIZE: '9' }, configFile: file });
  assert.equal(mms.jobQueueSize, 7);
});

test('TorchServe dialect: $$VAR$$ must name a set variable; MMS substitutes an empty string', async (t) => {
  const dir = await tempDir(t);
  await mkdir(join(dir, 'store'));
  const file = join(dir, 'config.properties');
  await writeFile(file, 'model_store=$$STORE_DIR$$\ninference_address=http://127.0.0.1:$$PORT$$\n');
  const ok = loadConfig({ cwd: dir, env: { STORE_DIR: join(dir, 'store'), PORT: '9090' }, configFile: file, dialect: 'torchserve' });
  assert.equal(ok.modelStore, join(dir, 'store'));
  assert.equal(ok.inferenceAddress.url, 'http://127.0.0.1:9090');
  assert.throws(
    () => loadConfig({ cwd: dir, env: { STORE_DIR: join(dir, 'store') }, configFile: file, dialect: 'torchserve' }),
    (err: unknown) =>
      isMarError(err) && /\$\$PORT\$\$ but the environment variable PORT is not set/.test(err.message) && !err.message.includes('\n'),
  );
  await writeFile(file, 'python=$$NOPE$$python3\n');
  assert.equal(loadConfig({ cwd: dir, env: {}, configFile: file }).python, 'python3');
});

test('unknown keys are listed once as ignored, never fatal; bad values of known ones are', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'config.properties');
  await writeFile(file, 'number_of_netty_threads=4\nvmargs=-Xmx4g\nmetrics_mode=prometheus\ntoken_expiration_min=0.5\nsome_typo=1\n');
  const c = loadConfig({ cwd: dir, env: {}, configFile: file, dialect: 'torchserve' });
  assert.deepEqual(c.ignoredKeys, ['number_of_netty_threads', 'some_typo', 'vmargs']);
  assert.equal(c.metricsMode, 'prometheus');
  assert.equal(c.tokenExpirationMinutes, 0.5);
  for (const [line, why] of [
    ['metrics_mode=json', /metrics_mode="json": expected prometheus or log/],
    ['enable_model_api=yes', /enable_model_api="yes": expected true or false/],
    ['default_startup_timeout=-1', /default_startup_timeout="-1": expected an integer >= 0/],
    ['metrics_address=tcp://x', /metrics_address="tcp:\/\/x"/],
  ] as const) {
    await writeFile(file, `${line}\n`);
    assert.throws(() => loadConfig({ cwd: dir, env: {}, configFile: file, dialect: 'torchserve' }), why);
  }
  // startup_timeout is accepted as a name for default_startup_timeout; TorchServe's own key wins
  await writeFile(file, 'startup_timeout=5\n');
  assert.equal(loadConfig({ cwd: dir, env: {}, configFile: file, dialect: 'torchserve' }).startupTimeoutSeconds, 5);
  await writeFile(file, 'startup_timeout=5\ndefault_startup_timeout=7\n');
  assert.equal(loadConfig({ cwd: dir, env: {}, configFile: file, dialect: 'torchserve' }).startupTimeoutSeconds, 7);
});

test("the workers send every metric line when each is written (log mode, metrics_location), PredictionTime sampled when Prometheus keeps a gauge's latest value, none when nothing reads them", async (t) => {
  const dir = await tempDir(t);
  const at = async (props: string) => {
    const file = join(dir, `m${props.length}.properties`);
    await writeFile(file, props);
    return workerMetrics(loadConfig({ cwd: dir, env: {}, configFile: file }));
  };
  assert.deepEqual(
    [
      await at(''),
      await at(`metrics_location=${join(dir, 'mms')}\n`),
      await at('metrics_address=http://127.0.0.1:0\nmetrics_mode=log\n'),
      await at('metrics_address=http://127.0.0.1:0\nmetrics_mode=prometheus\n'),
    ],
    [false, true, true, 'sampled'],
  );
});
