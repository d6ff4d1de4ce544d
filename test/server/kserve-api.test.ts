/**
 * KServe's v1 protocol and the Open Inference Protocol (v2) over real HTTP on loopback: every route, the error body
 * `{"error": ...}` with the registry's status, the datatype and shape checks, the binary tensor extension, the
 * envelopes (by route, by service_envelope), batching several v2 requests into one handler call, readiness of
 * startup models, and token authorization (health routes exempt).
 */
import assert from 'node:assert/strict';
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { encodeBinary } from '../../src/server/oip/tensor-binary.js';
import { TOOL_VERSION } from '../../src/util/package-info.js';
import { FIXTURES, tempDir } from '../helpers/util.js';
import { http, registerPy, startServer, versionedModel } from './server-helpers.js';

const JSON_HEADERS = { 'content-type': 'application/json' };
const post = (base: string, path: string, body: unknown, headers: Record<string, string> = JSON_HEADERS) =>
  http(base, 'POST', path, typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body), headers);

test('KServe v1: list, ready, :predict with the instances, :explain, errors as {"error"}', async (t) => {
  const s = await startServer(t);
  const I = s.inference;
  for (const [name, handler] of [
    ['k', 'kserve:handle'],
    ['explains', 'kserve_explain'],
  ] as const) {
    assert.equal((await registerPy(s, name, handler)).status, 200);
  }
  assert.equal((await registerPy(s, 'idle', 'kserve:handle', { initial_workers: 0 })).status, 200);

  assert.deepEqual((await http(I, 'GET', '/v1/models')).json(), { models: ['explains', 'idle', 'k'] });
  const ready = await http(I, 'GET', '/v1/models/k');
  assert.equal(ready.status, 200);
  assert.equal(ready.headers['content-type'], 'application/json');
  assert.deepEqual(ready.json(), { name: 'k', ready: true });
  const idle = await http(I, 'GET', '/v1/models/idle');
  assert.equal(idle.status, 503);
  assert.deepEqual(idle.json(), { error: 'Model idle is not ready: its workers are not up' });
  const missing = await http(I, 'GET', '/v1/models/nope');
  assert.equal(missing.status, 404);
  assert.deepEqual(missing.json(), { error: 'Model not found: nope' });

  // the handler sees the instances, one `data` entry each; TorchServe's explain header says False
  const p = await post(I, '/v1/models/k:predict', { instances: [[1, 2], { data: 'aGk=' }] });
  assert.equal(p.status, 200, p.text);
  assert.equal(p.headers['content-type'], 'application/json');
  assert.deepEqual(p.json(), {
    predictions: [
      { instance: [1, 2], items: 2, explain: 'False' },
      { instance: { data: 'aGk=' }, items: 2, explain: 'False' },
    ],
  });
  assert.match(String(p.headers['x-request-id']), /^[0-9a-f-]{36}$/);

  const noExplain = await post(I, '/v1/models/k:explain', { instances: [1] });
  assert.equal(noExplain.status, 501);
  assert.deepEqual(noExplain.json(), { error: 'The handler of model k does not implement explain' });
  const explained = await post(I, '/v1/models/explains:explain', { instances: ['a', 'b'] });
  assert.equal(explained.status, 200, explained.text);
  assert.deepEqual(explained.json(), { explanations: [{ explained: 'a' }, { explained: 'b' }] });
  assert.deepEqual((await post(I, '/v1/models/explains:predict', { instances: ['a'] })).json(), { predictions: [{ predicted: 'a' }] });

  for (const [method, path, body, status, error] of [
    [
      'POST',
      '/v1/models/k:predict',
      '{"instances": ',
      400,
      /^the request body is not valid JSON \(.*\); send \{"instances": \[\.\.\.\]\}$/,
    ],
    ['POST', '/v1/models/k:predict', '{"inputs": [1]}', 400, /^a KServe v1 request is a JSON object with "instances": an array$/],
    ['POST', '/v1/models/nope:predict', '{"instances": []}', 404, /^Model not found: nope$/],
    ['POST', '/v1/models/idle:predict', '{"instances": [1]}', 503, /no worker|Model idle/i],
    ['POST', '/v1/models/k:frobnicate', '{}', 404, /KServe v1 has :predict and :explain, not :frobnicate/],
    ['GET', '/v1/models/k:predict', undefined, 405, /^GET is not allowed on \/v1\/models\/k:predict; use POST$/],
    ['DELETE', '/v1/models', undefined, 405, /use GET/],
  ] as const) {
    const r = await http(I, method, path, body, JSON_HEADERS);
    assert.equal(r.status, status, `${method} ${path}: ${r.text}`);
    assert.equal(r.headers['content-type'], 'application/json');
    assert.deepEqual(Object.keys(r.json()), ['error']);
    assert.match(r.json().error, error, `${method} ${path}`);
  }
});

test('Open Inference Protocol v2 over REST: health, metadata, versions, infer with typed tensors and the binary extension', async (t) => {
  const s = await startServer(t);
  const I = s.inference;
  assert.equal((await registerPy(s, 'k', 'kserve:handle')).status, 200);
  await versionedModel(s.store, 'm1', 'm', '1.0', 'one');
  await versionedModel(s.store, 'm2', 'm', '2.0', 'two');
  for (const url of ['m1', 'm2']) assert.equal((await http(s.management, 'POST', `/models?url=${url}&initial_workers=1`)).status, 200);

  await t.test('server metadata, live, ready, model list', async () => {
    assert.deepEqual((await http(I, 'GET', '/v2')).json(), {
      name: 'mar-tools',
      version: TOOL_VERSION,
      extensions: ['binary_tensor_data'],
    });
    const live = await http(I, 'GET', '/v2/health/live');
    assert.equal(live.status, 200);
    assert.deepEqual(live.json(), { live: true });
    assert.deepEqual((await http(I, 'GET', '/v2/health/ready')).json(), { ready: true }, 'no startup models: ready');
    assert.deepEqual((await http(I, 'GET', '/v2/models')).json(), { models: ['k', 'm'] });
    assert.equal((await http(I, 'POST', '/v2/health/live')).status, 405);
  });

  await t.test('model metadata and readiness, by default version or a named one', async () => {
    assert.deepEqual((await http(I, 'GET', '/v2/models/m')).json(), {
      name: 'm',
      versions: ['1.0', '2.0'],
      platform: 'mar-tools python',
      inputs: [],
      outputs: [],
    });
    assert.equal((await http(I, 'GET', '/v2/models/m/versions/2.0')).status, 200);
    assert.deepEqual((await http(I, 'GET', '/v2/models/m/versions/2.0/ready')).json(), { name: 'm', ready: true });
    const noVersion = await http(I, 'GET', '/v2/models/m/versions/3.0/ready');
    assert.equal(noVersion.status, 404);
    assert.deepEqual(noVersion.json(), { error: 'Model version: 3.0 does not exist for model: m' });
    assert.equal((await http(I, 'GET', '/v2/models/nope')).status, 404);
    assert.equal((await http(I, 'GET', '/v2/models/m/versions')).status, 404);
    assert.equal((await http(I, 'GET', '/v2/nothing')).status, 404);
  });

  await t.test('infer: the handler sees each input tensor, nested to its shape; outputs named after the inputs', async () => {
    const r = await post(I, '/v2/models/k/infer', {
      id: '42',
      inputs: [
        { name: 'a', shape: [2, 2], datatype: 'INT32', data: [1, 2, 3, 4] },
        { name: 'f', shape: [2], datatype: 'FP32', data: [[0.5], [1.5]].flat() },
        { name: 'b', shape: [2], datatype: 'BOOL', data: [true, false] },
        { name: 's', shape: [1], datatype: 'BYTES', data: ['hello'] },
        { name: 'whole', shape: [1, 2], datatype: 'FP64', data: [[1.25, 2]], parameters: { kept: 'yes' } },
      ],
    });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers['content-type'], 'application/json');
    assert.deepEqual(r.json(), {
      model_name: 'k',
      model_version: '1.0',
      id: '42',
      outputs: [
        { name: 'a', datatype: 'INT64', shape: [4], data: [2, 4, 6, 8] },
        { name: 'f', datatype: 'FP64', shape: [2], data: [1, 3] },
        { name: 'b', datatype: 'BOOL', shape: [2], data: [false, true] },
        { name: 's', datatype: 'BYTES', shape: [1], data: ['hello'] },
        // an output that is a tensor object is taken as it is (here: the input the handler got back)
        { name: 'whole', datatype: 'FP64', shape: [1, 2], data: [1.25, 2], parameters: { kept: 'yes' } },
      ],
    });
    const versioned = await post(I, '/v2/models/m/versions/2.0/infer', { inputs: [] });
    assert.equal(versioned.status, 200, versioned.text);
    assert.equal(versioned.json().model_version, '2.0');
    assert.match(versioned.json().id, /^[0-9a-f-]{36}$/, 'no id sent: the request id');
    assert.equal(versioned.headers['x-request-id'], versioned.json().id);
  });

  await t.test('infer: requested outputs, a full output tensor, errors', async () => {
    const r = await post(I, '/v2/models/k/infer', {
      inputs: [
        { name: 'a', shape: [1], datatype: 'INT8', data: [1] },
        { name: 'tensor', shape: [1], datatype: 'INT8', data: [0] },
      ],
      outputs: [{ name: 'full' }],
    });
    assert.deepEqual(r.json().outputs, [{ name: 'full', datatype: 'FP32', shape: [2, 2], data: [1.5, 2.5, 3.5, 4.5] }]);
    for (const [body, status, error] of [
      [
        { inputs: [{ name: 'a', shape: [3], datatype: 'BOOL', data: [true] }] },
        400,
        /^input "a": shape \[3\] holds 3 element\(s\) but the data has 1$/,
      ],
      [{ inputs: [{ name: 'a', shape: [1], datatype: 'FLOAT32', data: [1] }] }, 400, /datatype "FLOAT32" is not one of/],
      [{ inputs: [{ name: 'a', shape: [1], datatype: 'UINT8', data: [-1] }] }, 400, /not a valid UINT8 value/],
      [
        { inputs: [{ name: 'a', shape: [1], datatype: 'INT8', data: [1] }], outputs: [{ name: 'b' }] },
        400,
        /requested output "b" is not produced by model k \(its outputs: a\)/,
      ],
      [{ inputs: [{ name: 'fail', shape: [1], datatype: 'BYTES', data: ['bad input'] }] }, 422, /^bad input$/],
      [{ inputs: [{ name: 'status', shape: [1], datatype: 'INT8', data: [1] }] }, 418, /\[\[1\]\]/],
      ['not json', 400, /^the inference request is not valid JSON/],
    ] as const) {
      const e = await post(I, '/v2/models/k/infer', body);
      assert.equal(e.status, status, e.text);
      assert.deepEqual(Object.keys(e.json()), ['error']);
      assert.match(e.json().error, error);
    }
    assert.equal((await http(I, 'GET', '/v2/models/k/infer')).status, 405);
    assert.deepEqual((await post(I, '/v2/models/nope/infer', { inputs: [] })).json(), { error: 'Model not found: nope' });
  });

  await t.test('the binary tensor extension: binary inputs, binary outputs on request', async () => {
    const fp16 = encodeBinary([0.5, -2, 65504], 'FP16');
    const bytes = encodeBinary([Buffer.from([0, 255, 1])], 'BYTES');
    const json = Buffer.from(
      JSON.stringify({
        inputs: [
          { name: 'h', shape: [3], datatype: 'FP16', parameters: { binary_data_size: fp16.length } },
          { name: 's', shape: [1], datatype: 'BYTES', parameters: { binary_data_size: bytes.length } },
        ],
        outputs: [{ name: 'h', parameters: { binary_data: true } }, { name: 's' }],
      }),
    );
    const r = await post(I, '/v2/models/k/infer', Buffer.concat([json, fp16, bytes]), {
      'content-type': 'application/octet-stream',
      'inference-header-content-length': String(json.length),
    });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers['content-type'], 'application/octet-stream');
    const n = Number(r.headers['inference-header-content-length']);
    const head = JSON.parse(r.body.subarray(0, n).toString());
    // FP16 reached the handler as numbers (doubled: FP64 out); raw BYTES as base64 text, as TorchServe's gRPC path
    assert.deepEqual(head.outputs, [
      { name: 'h', datatype: 'FP64', shape: [3], parameters: { binary_data_size: 24 } },
      { name: 's', datatype: 'BYTES', shape: [1], data: ['AP8B'] },
    ]);
    const out = r.body.subarray(n);
    assert.deepEqual([out.readDoubleLE(0), out.readDoubleLE(8), out.readDoubleLE(16)], [1, -4, 131008]);
    const wrong = await post(I, '/v2/models/k/infer', Buffer.concat([json, fp16]), {
      'inference-header-content-length': String(json.length),
    });
    assert.equal(wrong.status, 400);
    assert.match(wrong.json().error, /input "s": binary_data_size 7 does not fit the 0 binary byte/);
  });
});

test('v2 requests batched together: one handler call, each request its own outputs; a Node handler too', async (t) => {
  const s = await startServer(t);
  assert.equal((await registerPy(s, 'k', 'kserve:handle', { batch_size: 3, max_batch_delay: 10_000 })).status, 200);
  const one = (i: number) =>
    post(s.inference, '/v2/models/k/infer', {
      id: `r${i}`,
      inputs: [
        { name: 'x', shape: [1], datatype: 'INT32', data: [i] },
        { name: 'items', shape: [1], datatype: 'INT32', data: [0] },
      ],
    });
  // the batch leaves when it is full: the three requests are in it, whatever the delay
  const answers = await Promise.all([one(1), one(2), one(3)]);
  for (const [i, r] of answers.entries()) {
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json(), {
      model_name: 'k',
      model_version: '1.0',
      id: `r${i + 1}`,
      outputs: [
        { name: 'x', datatype: 'INT64', shape: [1], data: [2 * (i + 1)] },
        { name: 'items', datatype: 'INT64', shape: [1], data: [6] },
      ],
    });
  }
  const node = await http(s.management, 'POST', '/models?url=node&model_name=js&handler=kserve:handle&runtime=node&initial_workers=1');
  assert.equal(node.status, 200, node.text);
  const js = await post(s.inference, '/v2/models/js/infer', {
    inputs: [
      { name: 'x', shape: [2], datatype: 'FP32', data: [1.25, 2] },
      { name: 'y', shape: [2], datatype: 'FP32', data: [1.5, 2] },
    ],
  });
  // JavaScript has one number type: whole numbers come back INT64 (a handler returns a tensor object to choose)
  assert.deepEqual(js.json().outputs, [
    { name: 'x', datatype: 'FP64', shape: [2], data: [2.5, 4] },
    { name: 'y', datatype: 'INT64', shape: [2], data: [3, 4] },
  ]);
  assert.deepEqual((await post(s.inference, '/v1/models/js:predict', { instances: ['a', 1] })).json(), { predictions: ['a', 1] });
  const explain = await post(s.inference, '/v1/models/js:explain', { instances: ['a'] });
  assert.equal(explain.status, 501, 'Node handlers do not explain');
});

test('service_envelope: none passes the body whole; kservev2 makes /predictions speak v2 and refuses v1', async (t) => {
  const none = await startServer(t, { props: { service_envelope: 'none' } });
  assert.equal((await registerPy(none, 'raw', 'kserve_raw:handle')).status, 200);
  assert.deepEqual((await post(none.inference, '/v1/models/raw:predict', { instances: [1, 2, 3] })).json(), { predictions: [3, 2, 1] });
  const v2 = await post(none.inference, '/v2/models/raw/infer', {
    id: 'x',
    inputs: [
      { name: 'a', shape: [2], datatype: 'INT32', data: [1, 2] },
      { name: 'b', shape: [1], datatype: 'FP64', data: [0.5] },
    ],
  });
  assert.deepEqual(v2.json(), {
    model_name: 'raw',
    model_version: '1.0',
    id: 'x',
    outputs: [{ name: 'sum', datatype: 'FP64', shape: [1], data: [3.5] }],
  });

  const v2only = await startServer(t, { props: { service_envelope: 'kservev2' } });
  assert.equal((await registerPy(v2only, 'k', 'kserve:handle')).status, 200);
  const viaPredictions = await post(v2only.inference, '/predictions/k', {
    inputs: [{ name: 'a', shape: [1], datatype: 'INT16', data: [21] }],
  });
  assert.equal(viaPredictions.status, 200, viaPredictions.text);
  assert.deepEqual(viaPredictions.json().outputs, [{ name: 'a', datatype: 'INT64', shape: [1], data: [42] }]);
  const v1 = await post(v2only.inference, '/v1/models/k:predict', { instances: [1] });
  assert.equal(v1.status, 400);
  assert.equal(
    v1.json().error,
    'model k takes Open Inference Protocol v2 requests (service_envelope=kservev2): use /v2/models/k/infer (or gRPC ModelInfer)',
  );
  const badBody = await post(v2only.inference, '/predictions/k', 'x');
  assert.equal(badBody.status, 400, 'a TorchServe route answers its own error body');
  assert.equal(badBody.json().type, 'BadRequestException');
});

test('readiness: /v2/health/ready waits for every startup model, and says which one failed', async (t) => {
  const store = await tempDir(t, 'mar-ready-');
  await mkdir(join(store, 'k', 'MAR-INF'), { recursive: true });
  await cp(join(FIXTURES, 'handlers', 'python', 'kserve.py'), join(store, 'k', 'kserve.py'));
  await writeFile(
    join(store, 'k', 'MAR-INF', 'MANIFEST.json'),
    JSON.stringify({ runtime: 'python', model: { modelName: 'k', handler: 'kserve:handle' } }),
  );
  await mkdir(join(store, 'broken', 'MAR-INF'), { recursive: true });
  await writeFile(join(store, 'broken', 'MAR-INF', 'MANIFEST.json'), '{not json');

  const s = await startServer(t, { props: { model_store: store, load_models: 'k', default_workers_per_model: 1 } });
  assert.deepEqual((await http(s.inference, 'GET', '/v2/health/ready')).json(), { ready: true });
  assert.deepEqual((await http(s.inference, 'GET', '/v2/models/k/ready')).json(), { name: 'k', ready: true });
  // scaled to 0 workers: the startup model cannot serve, so the server is not ready
  assert.equal((await http(s.management, 'PUT', '/models/k?min_worker=0&synchronous=true')).status, 200);
  const down = await http(s.inference, 'GET', '/v2/health/ready');
  assert.equal(down.status, 503);
  assert.deepEqual(down.json(), { error: 'Server is not ready: not every startup model has its workers up: k 1.0 (0 of 1 workers up)' });

  const failed = await startServer(t, { props: { model_store: store, load_models: 'k,bad=broken', default_workers_per_model: 1 } });
  const r = await http(failed.inference, 'GET', '/v2/health/ready');
  assert.equal(r.status, 503);
  assert.deepEqual(r.json(), { error: 'Server is not ready: startup model(s) failed to load: bad' });
  assert.deepEqual((await http(failed.inference, 'GET', '/v2/health/live')).json(), { live: true });
});

test('token authorization: KServe routes need the inference key, the health routes (probes) do not', async (t) => {
  const s = await startServer(t, { load: { dialect: 'torchserve', enableModelApi: true } });
  const keys = JSON.parse(await readFile(join(s.dir, 'key_file.json'), 'utf8'));
  const auth = { authorization: `Bearer ${keys.inference.key}` };
  assert.equal((await http(s.inference, 'GET', '/v2/health/live')).status, 200);
  assert.equal((await http(s.inference, 'GET', '/v2/health/ready')).status, 200);
  for (const path of ['/v2', '/v2/models', '/v1/models']) {
    const r = await http(s.inference, 'GET', path);
    assert.equal(r.status, 400, path);
    assert.deepEqual(r.json(), { error: 'Token Authorization failed. Token either incorrect, expired, or not provided correctly' });
    assert.equal((await http(s.inference, 'GET', path, undefined, auth)).status, 200, path);
  }
});
