/**
 * The KServe and gRPC keys of config.properties: service_envelope (and TS_SERVICE_ENVELOPE, as KServe sets it),
 * grpc_inference_port / grpc_management_port with their addresses and enable_grpc_ssl; a gRPC port in use fails the
 * start with one line, and a stop closes the gRPC listener.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { isMarError } from '../../src/errors.js';
import { loadConfig } from '../../src/server/config.js';
import { startModelServer } from '../../src/server/start-server.js';
import { tempDir } from '../helpers/util.js';

const configIn = async (dir: string, text: string): Promise<string> => {
  const file = join(dir, 'config.properties');
  await writeFile(file, text);
  return file;
};

test('service_envelope: none, kserve or kservev2 (any case), else one line naming them; TS_SERVICE_ENVELOPE as KServe sets it', async (t) => {
  const dir = await tempDir(t);
  assert.equal(loadConfig({ cwd: dir, env: {} }).serviceEnvelope, null, 'unset: each route its own envelope');
  for (const [value, want] of [
    ['kserve', 'kserve'],
    ['KServeV2', 'kservev2'],
    ['none', 'none'],
  ] as const) {
    assert.equal(loadConfig({ cwd: dir, env: {}, properties: { service_envelope: value } }).serviceEnvelope, want);
  }
  assert.throws(
    () => loadConfig({ cwd: dir, env: {}, properties: { service_envelope: 'json' } }),
    (err: unknown) =>
      isMarError(err) &&
      err.code === 'INPUT_INVALID' &&
      err.message ===
        `invalid config value service_envelope="json": expected none, kserve, kservev2 (TorchServe's body and json envelopes are not supported)`,
  );
  // KServe's config.properties has enable_envvars_config=true and the pod's environment TS_SERVICE_ENVELOPE
  const file = await configIn(dir, 'enable_envvars_config=true\n');
  const ts = loadConfig({ cwd: dir, configFile: file, env: { TS_SERVICE_ENVELOPE: 'kservev2' }, dialect: 'torchserve' });
  assert.equal(ts.serviceEnvelope, 'kservev2');
  assert.deepEqual(ts.ignoredKeys, []);
});

test('gRPC ports: off unless set; addresses default to 127.0.0.1; bad values refused; enable_grpc_ssl needs PEM files', async (t) => {
  const dir = await tempDir(t);
  const none = loadConfig({ cwd: dir, env: {} });
  assert.equal(none.grpcInference, null);
  assert.equal(none.grpcManagement, null);
  const c = loadConfig({
    cwd: dir,
    env: {},
    properties: { grpc_inference_port: 7070, grpc_management_port: 7071, grpc_management_address: '0.0.0.0' },
  });
  assert.deepEqual(c.grpcInference, { host: '127.0.0.1', port: 7070, tls: null });
  assert.deepEqual(c.grpcManagement, { host: '0.0.0.0', port: 7071, tls: null });
  assert.deepEqual(
    loadConfig({ cwd: dir, env: {}, properties: { grpc_inference_port: 1, grpc_inference_address: '[::1]' } }).grpcInference,
    {
      host: '::1',
      port: 1,
      tls: null,
    },
  );
  for (const [props, message] of [
    [{ grpc_inference_port: '70000' }, /invalid config value grpc_inference_port="70000": expected a port number 0-65535/],
    [{ grpc_management_port: 'x' }, /grpc_management_port="x"/],
    [
      { grpc_inference_port: 1, grpc_inference_address: 'http://h' },
      /grpc_inference_address="http:\/\/h": expected a host name or IP address/,
    ],
    [{ grpc_inference_port: 1, enable_grpc_ssl: 'true' }, /enable_grpc_ssl="true": gRPC TLS needs private_key_file and certificate_file/],
  ] as const) {
    assert.throws(
      () => loadConfig({ cwd: dir, env: {}, properties: props }),
      (err: unknown) => isMarError(err) && message.test(err.message),
    );
  }
  // TorchServe's variables reach the gRPC keys too (enable_envvars_config=true)
  const file = await configIn(dir, 'enable_envvars_config=true\n');
  assert.equal(
    loadConfig({ cwd: dir, configFile: file, env: { TS_GRPC_INFERENCE_PORT: '7075' }, dialect: 'torchserve' }).grpcInference?.port,
    7075,
  );
});

test('a gRPC port in use fails the start with one line; a stopped server frees its gRPC port', async (t) => {
  const dir = await tempDir(t);
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  t.after(() => blocker.close());
  const port = (blocker.address() as { port: number }).port;
  const properties = { inference_address: 'http://127.0.0.1:0', management_address: 'http://127.0.0.1:0' };
  await assert.rejects(
    startModelServer({ cwd: dir, env: {}, properties: { ...properties, grpc_inference_port: port }, log: () => {} }),
    (err: unknown) =>
      isMarError(err) &&
      err.message ===
        `cannot listen for gRPC on 127.0.0.1:${port}: address already in use; change grpc_inference_port or grpc_inference_address`,
  );
  const s = await startModelServer({ cwd: dir, env: {}, properties: { ...properties, grpc_inference_port: 0 }, log: () => {} });
  const url = s.listeners.find((l) => l.api === 'gRPC inference')!.url;
  await s.stop();
  // the port is free again: a plain TCP server can take it
  const again = createServer();
  await new Promise<void>((resolve, reject) => {
    again.once('error', reject);
    again.listen(Number(url.split(':').pop()), '127.0.0.1', resolve);
  });
  again.close();
});
