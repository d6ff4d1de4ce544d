/**
 * Two config.properties files from real TorchServe deployments (pytorch/serve: kubernetes/kserve/config.properties
 * and docker/config.properties), verbatim, start the server in TorchServe's dialect: every key is accepted, the
 * ones without an effect are reported, and the model is served. Only the listen addresses (gRPC ports included) and
 * the model store are replaced from code (a test cannot bind 0.0.0.0:8085 or own /home/model-server).
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { createArchive } from '../../src/archive/pack.js';
import { startModelServer } from '../../src/server/start-server.js';
import { FIXTURES, tempDir } from '../helpers/util.js';
import { http } from './server-helpers.js';

const KSERVE = `inference_address=http://0.0.0.0:8085
management_address=http://0.0.0.0:8085
metrics_address=http://0.0.0.0:8082
grpc_inference_port=7070
grpc_management_port=7071
enable_envvars_config=true
install_py_dep_per_model=true
enable_metrics_api=true
metrics_mode=prometheus
NUM_WORKERS=1
number_of_netty_threads=4
job_queue_size=10
load_models=all
model_store=/home/model-server/shared/model-store
model_snapshot={"name":"startup.cfg","modelCount":1,"models":{"mnist":{"1.0":{"defaultVersion":true,"marName":"mnist.mar","minWorkers":1,"maxWorkers":5,"batchSize":5,"maxBatchDelay":200,"responseTimeout":60}}}}
`;

const DOCKER = `inference_address=http://0.0.0.0:8080
management_address=http://0.0.0.0:8081
metrics_address=http://0.0.0.0:8082
grpc_inference_address=0.0.0.0
grpc_management_address=0.0.0.0
number_of_netty_threads=32
job_queue_size=1000
model_store=/home/model-server/model-store
workflow_store=/home/model-server/wf-store
`;

for (const [name, text, ignored, models] of [
  ['KServe', KSERVE, ['NUM_WORKERS', 'enable_metrics_api', 'number_of_netty_threads'], undefined],
  ['Docker', DOCKER, ['number_of_netty_threads', 'workflow_store'], ['mnist=mnist.mar']],
] as const) {
  test(`TorchServe's ${name} config.properties starts the server unchanged`, async (t) => {
    const dir = await tempDir(t);
    const store = join(dir, 'model-store');
    await createArchive({ modelName: 'mnist', handler: 'noop:handle', modelPath: join(FIXTURES, 'handlers', 'python'), exportPath: store });
    const configFile = join(dir, 'config.properties');
    await writeFile(configFile, text);
    const lines: string[] = [];
    const server = await startModelServer({
      dialect: 'torchserve',
      configFile,
      cwd: dir,
      env: {},
      modelStore: store,
      ...(models ? { models } : {}),
      properties: {
        inference_address: 'http://127.0.0.1:0',
        management_address: 'http://127.0.0.1:0',
        metrics_address: 'http://127.0.0.1:0',
        // the KServe file's gRPC ports (7070, 7071): free ones, as for the HTTP listeners
        ...(text.includes('grpc_inference_port') ? { grpc_inference_port: 0, grpc_management_port: 0 } : {}),
        default_workers_per_model: 1,
      },
      log: (l) => lines.push(l),
      runtimeOptions: { log: () => {}, onEvent: () => {} },
    });
    t.after(() => server.stop(2000));
    assert.deepEqual([...server.config.ignoredKeys], [...ignored]);
    for (const key of ignored) assert.ok(lines.includes(`Config key ${key} is not used by model-server; ignored`), key);
    const keys = JSON.parse(await readFile(join(dir, 'key_file.json'), 'utf8'));
    const inference = server.listeners.find((l) => l.api !== 'management')!.url;
    const management = server.listeners.find((l) => l.api !== 'inference')!.url;
    const list = await http(management, 'GET', '/models', undefined, { authorization: `Bearer ${keys.management.key}` });
    assert.deepEqual(list.json().models, [{ modelName: 'mnist', modelUrl: 'mnist.mar' }]);
    const predicted = await http(inference, 'POST', '/predictions/mnist', 'x', { authorization: `Bearer ${keys.inference.key}` });
    assert.equal(predicted.text, 'OK');
    // grpc_inference_port serves the Open Inference Protocol (docs/kserve.md)
    assert.equal(
      server.listeners.some((l) => l.api === 'gRPC inference'),
      text.includes('grpc_inference_port'),
    );
  });
}
