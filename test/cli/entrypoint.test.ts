/**
 * The container entrypoint (bin/model-server-entrypoint.js), tested on the host with the layout KServe gives the
 * container: what it plans from the model directory and KServe's environment, and a real start as KServe's
 * kserve-torchserve runtime would start the container.
 */

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cp, mkdir, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { createArchive } from '../../src/archive/pack.js';
import { planEntrypoint } from '../../src/cli/entrypoint-plan.js';
import { isMarError } from '../../src/errors.js';
import { packagePath } from '../../src/util/package-info.js';
import { grpcClient } from '../helpers/grpc-clients.js';
import { FIXTURES, run, tempDir } from '../helpers/util.js';
import { http } from '../server/server-helpers.js';

const ENTRYPOINT = packagePath('bin', 'model-server-entrypoint.js');

/** KServe's sample config.properties (kserve-torchserve), with its model_snapshot for model `echo`. */
const KSERVE_CONFIG = {
  inference_address: 'http://0.0.0.0:8085',
  management_address: 'http://0.0.0.0:8085',
  metrics_address: 'http://0.0.0.0:8082',
  grpc_inference_port: '7070',
  grpc_management_port: '7071',
  enable_envvars_config: 'true',
  install_py_dep_per_model: 'true',
  model_store: '/mnt/models/model-store',
  model_snapshot: JSON.stringify({
    name: 'startup.cfg',
    modelCount: 1,
    models: {
      echo: {
        '1.0': {
          defaultVersion: true,
          marName: 'echo.mar',
          minWorkers: 1,
          maxWorkers: 1,
          batchSize: 1,
          maxBatchDelay: 100,
          responseTimeout: 120,
        },
      },
    },
  }),
};

/** `<dir>/model-store/echo.mar` (the echo fixture handler) and, unless null, `<dir>/config/config.properties`. */
async function kserveLayout(dir: string, config: Record<string, string> | null, archives = ['echo']): Promise<void> {
  const src = join(dir, 'src');
  await mkdir(src, { recursive: true });
  await cp(join(FIXTURES, 'handlers', 'python', 'echo.py'), join(src, 'echo.py'));
  await mkdir(join(dir, 'model-store'), { recursive: true });
  for (const name of archives) {
    await createArchive({ modelName: name, handler: 'echo:handle', modelPath: src, exportPath: join(dir, 'model-store') });
  }
  if (config !== null) {
    await mkdir(join(dir, 'config'));
    const text = Object.entries(config)
      .map(([k, v]) => `${k}=${v}`)
      .join('\n');
    await writeFile(join(dir, 'config', 'config.properties'), `${text}\n`);
  }
}

/** The MarError code planEntrypoint throws, with its message. */
function planError(fn: () => unknown): { code: string; message: string } {
  try {
    fn();
  } catch (err) {
    assert.ok(isMarError(err), String(err));
    return { code: err.code, message: err.message };
  }
  assert.fail('no error');
}

test('a KServe model directory: its config and store, HTTP on 8080 where the wrapper listened, gRPC reached like HTTP', async (t) => {
  const dir = await tempDir(t);
  await kserveLayout(dir, KSERVE_CONFIG);
  const plan = planEntrypoint({ modelDir: dir }, {});
  assert.deepEqual(plan.properties, { inference_address: 'http://0.0.0.0:8080', grpc_inference_address: '0.0.0.0' });
  assert.equal(plan.start.config, join(dir, 'config', 'config.properties'));
  assert.equal(plan.start.modelStore, join(dir, 'model-store'));
  assert.equal(plan.start.dialect, 'torchserve');
  assert.equal(plan.start.foreground, true);
  assert.equal(plan.inferenceUrl, 'http://0.0.0.0:8080');
  // the snapshot names the models: nothing more is loaded
  assert.ok(!('load_models' in plan.properties));
  assert.match(plan.notes[0]!, /^Model directory .*: config .*config\.properties, model store .*model-store$/);

  // MODEL_DIR (KServe's) when no --model-dir; /mnt/models otherwise
  assert.equal(planEntrypoint({}, { MODEL_DIR: dir }).start.modelStore, join(dir, 'model-store'));
});

test("PORT: the HTTP port, unless it is the gRPC port; PROTOCOL_VERSION=grpc-v2 puts gRPC on PORT, else on KServe's 8081", async (t) => {
  const dir = await tempDir(t);
  await kserveLayout(dir, KSERVE_CONFIG);
  const plan = (env: NodeJS.ProcessEnv): Record<string, string> => planEntrypoint({ modelDir: dir }, env).properties;

  assert.equal(plan({ PORT: '9000' })['inference_address'], 'http://0.0.0.0:9000');
  assert.equal(plan({ PORT: '9000', PROTOCOL_VERSION: 'v2' })['inference_address'], 'http://0.0.0.0:9000');
  // an InferenceService declaring the h2c port 7070 (TorchServe's gRPC) gets it as PORT
  assert.deepEqual(plan({ PORT: '7070' }), { inference_address: 'http://0.0.0.0:8080', grpc_inference_address: '0.0.0.0' });
  assert.deepEqual(plan({ PROTOCOL_VERSION: 'grpc-v2' }), {
    inference_address: 'http://0.0.0.0:8080',
    grpc_inference_port: '8081',
    grpc_inference_address: '0.0.0.0',
  });
  assert.equal(plan({ PROTOCOL_VERSION: 'grpc-v2', PORT: '9001' })['grpc_inference_port'], '9001');
  // KServe renders an unset label as '': the same as unset
  assert.deepEqual(plan({ PORT: '', PROTOCOL_VERSION: '', TS_SERVICE_ENVELOPE: '' }), plan({}));

  assert.deepEqual(
    planError(() => plan({ PROTOCOL_VERSION: 'v3' })),
    {
      code: 'INPUT_INVALID',
      message: 'PROTOCOL_VERSION="v3": expected v1, v2, grpc-v2 (the InferenceService\'s protocolVersion)',
    },
  );
  assert.equal(planError(() => plan({ PORT: 'http' })).code, 'INPUT_INVALID');
});

test('ports that would collide stop the plan with the key to move, before anything listens', async (t) => {
  const dir = await tempDir(t);
  // no management_address: TorchServe's default 8081 is the port gRPC v2 takes
  const { management_address: _m, ...config } = KSERVE_CONFIG;
  await kserveLayout(dir, config);
  assert.deepEqual(
    planError(() => planEntrypoint({ modelDir: dir }, { PROTOCOL_VERSION: 'grpc-v2' })),
    {
      code: 'INPUT_INVALID',
      message:
        "the gRPC inference port 8081 is also management_address's port: move management_address in config.properties (kserve-torchserve's configs use http://0.0.0.0:8085)",
    },
  );
  assert.match(
    planError(() => planEntrypoint({ modelDir: dir }, { PORT: '8082' })).message,
    /HTTP inference port 8082 is also metrics_address's port/,
  );
});

test("TS_SERVICE_ENVELOPE: service_envelope unless the file sets it; with enable_envvars_config the loader applies it, as TorchServe's", async (t) => {
  const dir = await tempDir(t);
  const { enable_envvars_config: _e, ...withoutEnvvars } = KSERVE_CONFIG;
  await kserveLayout(dir, withoutEnvvars);
  const env = { TS_SERVICE_ENVELOPE: 'kservev2' };
  assert.equal(planEntrypoint({ modelDir: dir }, env).properties['service_envelope'], 'kservev2');

  await writeFile(join(dir, 'config', 'config.properties'), 'service_envelope=kserve\n');
  const fileWins = planEntrypoint({ modelDir: dir }, env);
  assert.ok(!('service_envelope' in fileWins.properties));
  assert.ok(fileWins.notes.some((n) => n.startsWith('service_envelope=kserve (config.properties;')));

  await writeFile(join(dir, 'config', 'config.properties'), 'enable_envvars_config=true\nmodel_snapshot={"models":{"echo":{}}}\n');
  const loader = planEntrypoint({ modelDir: dir }, env);
  assert.ok(!('service_envelope' in loader.properties), 'the config loader applies TS_SERVICE_ENVELOPE itself');
  assert.ok(loader.notes.includes('service_envelope=kservev2 (TS_SERVICE_ENVELOPE with enable_envvars_config=true)'));
});

test('MODEL_NAME names the one model of a store the config names no model of; otherwise every model in the store starts', async (t) => {
  const one = await tempDir(t);
  await kserveLayout(one, null);
  assert.equal(planEntrypoint({ modelDir: one }, { MODEL_NAME: 'iris' }).properties['load_models'], 'iris=echo.mar');
  assert.equal(planEntrypoint({ modelDir: one }, {}).properties['load_models'], 'all');
  // no config file: TorchServe's defaults, all interfaces in a container
  assert.equal(planEntrypoint({ modelDir: one }, {}).properties['inference_address'], 'http://0.0.0.0:8080');

  const two = await tempDir(t);
  await kserveLayout(two, null, ['a', 'b']);
  const plan = planEntrypoint({ modelDir: two }, { MODEL_NAME: 'iris' });
  assert.equal(plan.properties['load_models'], 'all');
  assert.ok(plan.notes.includes('load_models=all: a.mar, b.mar (MODEL_NAME=iris names one model; the store holds 2)'));

  const snap = await tempDir(t);
  await kserveLayout(snap, KSERVE_CONFIG);
  assert.ok(
    planEntrypoint({ modelDir: snap }, { MODEL_NAME: 'iris' }).notes.includes(
      "MODEL_NAME=iris is not in model_snapshot (echo): the snapshot's models are served",
    ),
  );
});

test('a directory without model-store/: one line saying what KServe must provide', async (t) => {
  const dir = await tempDir(t);
  const r = await run(process.execPath, [ENTRYPOINT, '--model-dir', dir]);
  assert.equal(r.code, 1);
  assert.equal(
    r.stderr,
    `error: no model-store/ in ${dir}: give the directory that holds model-store/ and config/config.properties (KServe's storageUri, the kserve-torchserve layout), or --model-store\n`,
  );
});

test("started as kserve-torchserve starts its container (its args, KServe's env), the server serves the model store: TorchServe's APIs, v1, v2 and gRPC", async (t) => {
  const dir = await tempDir(t);
  // KServe's config, on loopback and free ports for the test (the image's config says 0.0.0.0)
  await kserveLayout(dir, {
    ...KSERVE_CONFIG,
    inference_address: 'http://127.0.0.1:8085',
    management_address: 'http://127.0.0.1:0',
    metrics_address: 'http://127.0.0.1:0',
    grpc_inference_port: '0',
    grpc_management_port: '0',
  });
  const args = [
    'torchserve',
    '--start',
    `--model-store=${join(dir, 'model-store')}`,
    `--ts-config=${join(dir, 'config', 'config.properties')}`,
    '--disable-token-auth',
  ];
  const proc = spawn(process.execPath, [ENTRYPOINT, ...args], {
    cwd: dir,
    env: { ...process.env, PORT: '0', PROTOCOL_VERSION: 'v1', MAR_CACHE_DIR: join(dir, 'cache') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  t.after(() => {
    if (proc.exitCode === null) proc.kill('SIGKILL');
  });
  const lines: string[] = [];
  let onLine: (line: string) => void = () => {};
  for (const stream of [proc.stdout, proc.stderr]) {
    createInterface({ input: stream }).on('line', (l) => {
      lines.push(l);
      onLine(l);
    });
  }
  const bound = (api: string): Promise<string> =>
    new Promise((resolve, reject) => {
      const re = new RegExp(`${api} API bind to: (\\S+)`);
      const seen = lines.map((l) => re.exec(l)).find(Boolean);
      if (seen) return resolve(seen[1]!);
      const previous = onLine;
      onLine = (l) => {
        previous(l);
        const m = re.exec(l);
        if (m) resolve(m[1]!);
      };
      void exited.then((code) => reject(new Error(`the entrypoint exited (${code}) before listening:\n${lines.join('\n')}`)));
    });
  const inference = await bound('Inference');
  const management = await bound('Management');
  assert.match(inference, /^http:\/\/127\.0\.0\.1:\d+$/, 'the config host, the port from PORT');
  assert.notEqual(inference, 'http://127.0.0.1:8085');
  assert.ok(lines.some((l) => /\[INFO \] Model directory .*: config .*config\.properties, model store .*model-store$/.test(l)));
  assert.ok(lines.some((l) => l.endsWith('--start: the container entrypoint always runs the server in the foreground')));

  const ping = await http(inference, 'GET', '/ping');
  assert.equal(ping.status, 200);
  assert.deepEqual(ping.json(), { status: 'Healthy' }, 'the snapshot model has its worker');
  const predicted = await http(inference, 'POST', '/predictions/echo', 'hi', { 'content-type': 'text/plain' });
  assert.equal(predicted.status, 200, predicted.text);
  assert.equal(predicted.json().params.body.value, 'hi');
  const models = await http(management, 'GET', '/models');
  assert.deepEqual(models.json().models, [{ modelName: 'echo', modelUrl: 'echo.mar' }]);

  // the protocols KServe's wrapper answered: v1, v2 (REST) and gRPC v2, without a wrapper
  const v1 = await http(inference, 'POST', '/v1/models/echo:predict', JSON.stringify({ instances: [{ a: 1 }] }), {
    'content-type': 'application/json',
  });
  assert.equal(v1.status, 200, v1.text);
  assert.equal(v1.json().predictions[0].params.a.value, 1, 'the instance reached the handler');
  const ready = await http(inference, 'GET', '/v2/health/ready');
  assert.equal(ready.status, 200, ready.text);
  assert.deepEqual(ready.json(), { ready: true });
  const infer = { id: 'e2e', inputs: [{ name: 'x', shape: [2], datatype: 'INT32', data: [1, 2] }] };
  const v2 = await http(inference, 'POST', '/v2/models/echo/infer', JSON.stringify(infer), { 'content-type': 'application/json' });
  assert.equal(v2.status, 200, v2.text);
  assert.equal(v2.json().model_name, 'echo');
  assert.equal(v2.json().id, 'e2e');
  // gRPC on the port the server logs (bound on all interfaces, as in the container)
  const grpcPort = (await bound('gRPC inference')).split(':').pop()!;
  const grpcUrl = `127.0.0.1:${grpcPort}`;
  const oip = grpcClient(grpcUrl, 'open_inference_grpc.proto', 'inference.GRPCInferenceService');
  const ts = grpcClient(grpcUrl, 'inference.proto', 'org.pytorch.serve.grpc.inference.InferenceAPIsService');
  t.after(() => {
    oip.close();
    ts.close();
  });
  const inferred = await oip.call('ModelInfer', {
    model_name: 'echo',
    id: 'g-e2e',
    inputs: [{ name: 'x', datatype: 'INT32', shape: [2], contents: { int_contents: [1, 2] } }],
  });
  assert.equal(inferred.id, 'g-e2e', JSON.stringify(inferred));
  assert.equal(inferred.model_name, 'echo');
  assert.equal(inferred.outputs.length, 1);
  const predictedGrpc = await ts.call('Predictions', { model_name: 'echo', input: { body: Buffer.from('hi') } });
  assert.equal(JSON.parse(predictedGrpc.prediction.toString('utf8')).params.body.value, 'hi', JSON.stringify(predictedGrpc));

  proc.kill('SIGTERM');
  assert.equal(await exited, 0);
  assert.ok(lines.some((l) => l.endsWith('Model server stopped.')));
});

test('--healthcheck asks /ping where the plan puts the inference API: exit 0 on 200, else 1', async (t) => {
  const dir = await tempDir(t);
  await kserveLayout(dir, { ...KSERVE_CONFIG, inference_address: 'http://127.0.0.1:8085' });
  let status = 200;
  const paths: string[] = [];
  const fake = createServer((req, res) => {
    paths.push(`${req.method} ${req.url}`);
    res.writeHead(status, { 'content-type': 'application/json' }).end('{"status": "Healthy"}');
  });
  await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
  t.after(() => fake.close());
  const port = (fake.address() as AddressInfo).port;
  const check = () => run(process.execPath, [ENTRYPOINT, '--healthcheck', '--model-dir', dir], { env: { PORT: String(port) } });

  const ok = await check();
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout, `http://127.0.0.1:${port}/ping: 200 {"status": "Healthy"}\n`);
  status = 500;
  assert.equal((await check()).code, 1);
  assert.deepEqual(paths, ['GET /ping', 'GET /ping']);
  await new Promise<void>((resolve) => fake.close(() => resolve()));
  const down = await check();
  assert.equal(down.code, 1);
  assert.match(down.stdout, /ECONNREFUSED/);
});
