/** The Node worker's own contract (JS-specific parts); the shared protocol contract is in worker-process.test.ts. */

import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { MarError } from '../../src/errors.js';
import type { MetricLine } from '../../src/runtime/metrics.js';
import { openModel } from '../../src/runtime/model.js';
import type { InferenceRequest } from '../../src/runtime/protocol.js';
import { type WorkerLogLine, WorkerProcess } from '../../src/runtime/worker-process.js';
import { TOOL_VERSION } from '../../src/util/package-info.js';
import { FIXTURES, tempDir } from '../helpers/util.js';

const NODE_FIXTURES = join(FIXTURES, 'handlers', 'node');

async function startNode(
  t: TestContext,
  dir: string,
  handler: string,
  extra: { metrics?: MetricLine[]; logs?: WorkerLogLine[]; onLog?: (l: WorkerLogLine) => void } = {},
) {
  const model = await openModel(dir, { modelName: 'js', handler, runtime: 'node' });
  const worker = await WorkerProcess.start({
    id: '1',
    model,
    batchSize: 2,
    log: (l) => {
      extra.logs?.push(l);
      extra.onLog?.(l);
    },
    onMetric: (m) => extra.metrics?.push(m),
  });
  t.after(() => worker.stop(500));
  return worker;
}

const req = (id: string, text: string, headers: Array<[string, string]> = []): InferenceRequest => ({
  requestId: id,
  headers,
  params: [{ name: 'body', contentType: 'text/plain', value: Buffer.from(text) }],
});

test('async handler: exported initialize() is awaited at LOAD, handle() is awaited, the context is complete', async (t) => {
  const worker = await startNode(t, NODE_FIXTURES, 'async_handler');
  const reply = await worker.predict([req('a', 'x', [['X-Custom', 'abc']]), req('b', 'y')], 10_000);
  assert.equal(reply.code, 200);
  const [a, b] = reply.predictions.map((p) => JSON.parse(p.body.toString()));
  assert.equal(a.initCalls, 1, 'initialize runs once, and handle(null) is not called instead');
  assert.equal(a.loadedAt, NODE_FIXTURES);
  assert.equal(a.modelName, 'js');
  assert.deepEqual(a.systemProperties, {
    modelDir: NODE_FIXTURES,
    gpuId: null,
    batchSize: 2,
    serverName: 'MMS',
    serverVersion: TOOL_VERSION,
  });
  assert.deepEqual(a.requestIds, ['a', 'b']);
  assert.deepEqual([a.requestId, b.requestId], ['a', 'b']);
  assert.equal(a.custom, 'abc', 'getRequestHeader falls back to a case-insensitive match');
  assert.equal(b.custom, null);
  assert.equal(a.bodyType, 'string');
  assert.equal(a.manifest, null);
});

test('errors: any thrown error with a numeric statusCode, cycles and rejected promises', async (t) => {
  const cases: Array<[string, number, string]> = [
    ['status_code_error', 429, 'slow down'],
    ['cycle', 503, 'Unsupported model output data type.'],
    ['rejected', 503, 'Prediction failed'],
  ];
  for (const [fn, code, message] of cases) {
    const logs: WorkerLogLine[] = [];
    const worker = await startNode(t, NODE_FIXTURES, `errors:${fn}`, { logs });
    const reply = await worker.predict([req('a', 'x')], 10_000);
    assert.deepEqual([reply.code, reply.message], [code, message], fn);
    assert.equal(worker.state, 'ready');
    if (fn === 'rejected') {
      // stderr and the reply socket are two channels: the stack may arrive after the reply, so read stderr to its end
      await worker.stop(2000);
      assert.ok(
        logs.some((l) => l.line.includes('TypeError: async failure')),
        'the stack reaches the log',
      );
    }
  }
});

test('metrics recorded through context.metrics arrive as parsed [METRICS] lines', async (t) => {
  const metrics: MetricLine[] = [];
  const worker = await startNode(t, NODE_FIXTURES, 'metrics:handle', { metrics });
  const reply = await worker.predict([req('a', 'x'), req('b', 'y')], 10_000);
  // the batch's lines rode in the reply (launchers.ts): recorded by the time it resolves, its message is the worker's
  assert.deepEqual([reply.code, reply.message], [200, 'Prediction success']);
  assert.ok(metrics.some((m) => m.name === 'PredictionTime'));
  // LOAD's lines come on stdout, which may be read after the socket
  while (!metrics.some((m) => m.name === 'LoadCount')) await new Promise((r) => setImmediate(r));
  const by = (n: string) => metrics.find((m) => m.name === n)!;
  assert.equal(by('LoadCount').value, 1);
  assert.equal(by('Requests').value, 3, 'counters add up within a batch');
  assert.deepEqual(by('Requests').requestIds, ['a', 'b']);
  assert.deepEqual([by('Preprocess').unit, by('Preprocess').value, by('Preprocess').requestIds], ['Milliseconds', 1.5, ['a']]);
  assert.equal(by('Payload').unit, 'Kilobytes');
  assert.deepEqual(by('Confidence').dimensions, [
    ['Label', 'cat'],
    ['ModelName', 'js'],
    ['Level', 'Model'],
  ]);
  assert.deepEqual([by('Oops').dimensions, by('Oops').requestIds], [[['Level', 'Error']], []]);
});

test('handler resolution: .mjs and .cjs files, a CommonJS function export, an explicit function name, top-level await', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'cjs_fn.cjs'), 'exports.predict = (data) => data === null ? null : data.map(() => "cjs");\n');
  await writeFile(join(dir, 'esm.mjs'), 'export default { handle: (data) => data === null ? null : data.map(() => "default-object") };\n');
  await mkdir(join(dir, 'sub'));
  await writeFile(join(dir, 'sub', 'nested.mjs'), 'export const handle = (d) => d && d.map(() => "nested");\n');
  await writeFile(join(dir, 'default_fn.cjs'), 'module.exports = function (d) { return d && d.map(() => "module-function"); };\n');
  // an ES module that awaits at top level (require() refuses it: the worker imports it instead)
  await writeFile(
    join(dir, 'tla.mjs'),
    'const word = await Promise.resolve("top-level-await");\nexport const handle = (d) => d && d.map(() => word);\n',
  );
  for (const [handler, expected] of [
    ['cjs_fn:predict', 'cjs'],
    ['esm', 'default-object'],
    ['sub/nested.js:handle', 'nested'],
    ['default_fn', 'module-function'],
    ['tla', 'top-level-await'],
  ]) {
    const worker = await startNode(t, dir, handler!);
    const reply = await worker.predict([req('a', 'x')], 10_000);
    assert.equal(reply.predictions[0]!.body.toString(), expected, handler);
  }
});

test('LOAD fails clearly for a module with two classes and no handle, and for a throwing initialize()', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'two.mjs'), 'export class A { handle() {} }\nexport class B { handle() {} }\n');
  await writeFile(
    join(dir, 'bad_init.mjs'),
    'export class M { initialize() { throw new Error("no weights"); } handle(d) { return d; } }\n',
  );
  await assert.rejects(
    startNode(t, dir, 'two'),
    (e: unknown) =>
      e instanceof MarError &&
      e.code === 'WORKER_LOAD_FAILED' &&
      e.message === 'Failed to load model js: Expected only one class in module two (found 2) or an exported function handle',
  );
  await assert.rejects(
    startNode(t, dir, 'bad_init'),
    (e: unknown) => e instanceof MarError && e.code === 'WORKER_LOAD_FAILED' && e.message === 'Failed to load model js: no weights',
  );
});

test('a busy loop (blocked event loop) is still ended by the timeout', async (t) => {
  const worker = await startNode(t, NODE_FIXTURES, 'hang:handle');
  await assert.rejects(worker.predict([req('a', 'spin')], 300), (e: unknown) => e instanceof MarError && e.code === 'WORKER_TIMEOUT');
  await worker.exited;
  assert.equal(worker.state, 'dead');
});

test('a stray unhandled rejection in handler code is logged and does not end the worker', async (t) => {
  const dir = await tempDir(t);
  await writeFile(
    join(dir, 'stray.mjs'),
    'export function handle(d) { if (d) Promise.reject(new Error("stray")); return d && d.map(() => "ok"); }\n',
  );
  const logs: WorkerLogLine[] = [];
  const worker = await startNode(t, dir, 'stray', { logs });
  assert.equal((await worker.predict([req('a', 'x')], 10_000)).code, 200);
  assert.equal((await worker.predict([req('b', 'x')], 10_000)).code, 200);
  await worker.stop(2000); // stderr read to its end: the log line and the replies travel on different channels
  assert.ok(logs.some((l) => l.line.includes('Unhandled rejection') || l.line.includes('stray')));
});

test('stop() escalates: EOF, then SIGTERM, then SIGKILL for a worker stuck in a busy loop', async (t) => {
  const worker = await startNode(t, NODE_FIXTURES, 'hang:handle');
  const inFlight = worker.predict([req('a', 'spin')], 60_000).then(
    () => null,
    (e: unknown) => e,
  );
  const t0 = Date.now();
  await worker.stop(200);
  assert.ok(Date.now() - t0 < 5_000);
  assert.equal((await worker.exited).signal, 'SIGKILL');
  const err = await inFlight;
  assert.ok(err instanceof MarError && err.code === 'WORKER_DIED', String(err));
});

test('a worker killed by SIGKILL from outside (the OOM killer) answers 507 "Worker died."', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'oom.mjs'), 'export function handle(d) { if (d) process.kill(process.pid, "SIGKILL"); return d; }\n');
  const worker = await startNode(t, dir, 'oom');
  await assert.rejects(
    worker.predict([req('a', 'x')], 10_000),
    (e: unknown) => e instanceof MarError && e.code === 'WORKER_OUT_OF_MEMORY' && e.message === 'Worker died.' && e.httpStatus === 507,
  );
});

test('data.map(async ...) works: promise elements are awaited, a rejected one fails the batch with 503', async (t) => {
  const dir = await tempDir(t);
  await writeFile(
    join(dir, 'map_async.mjs'),
    'export function handle(d) { return d && d.map(async (r) => { if (r.body === "bad") throw new Error("no"); return { echo: r.body }; }); }\n',
  );
  const worker = await startNode(t, dir, 'map_async');
  const ok = await worker.predict([req('a', 'x'), req('b', 'y')], 10_000);
  assert.deepEqual(
    ok.predictions.map((p) => JSON.parse(p.body.toString())),
    [{ echo: 'x' }, { echo: 'y' }],
  );
  const bad = await worker.predict([req('a', 'x'), req('b', 'bad')], 10_000);
  assert.deepEqual([bad.code, bad.message], [503, 'Prediction failed']);
});

test('an error code that does not fit the wire is answered 500 with its message, and the worker keeps answering', async (t) => {
  const dir = await tempDir(t);
  await writeFile(
    join(dir, 'bigcode.mjs'),
    'export function handle(d) {\n' +
      '  if (d === null) return null;\n' +
      '  if (d[0].body === "big") throw Object.assign(new Error("code out of range"), { statusCode: 2 ** 40 });\n' +
      '  return d.map(() => "ok");\n' +
      '}\n',
  );
  const worker = await startNode(t, dir, 'bigcode');
  for (let round = 0; round < 2; round++) {
    const reply = await worker.predict([req('a', 'big')], 10_000);
    assert.deepEqual([reply.code, reply.message], [500, 'code out of range']);
    assert.equal((await worker.predict([req('b', 'x')], 10_000)).code, 200, 'the next batch is still answered');
  }
});

test('a partial line written by the handler is completed before the worker prints its [METRICS] lines', async (t) => {
  const dir = await tempDir(t);
  await writeFile(
    join(dir, 'partial.mjs'),
    'export function handle(d, context) {\n' +
      '  if (d === null) return null;\n' +
      '  process.stdout.write("progress...");\n' +
      '  return d.map(() => "ok");\n' +
      '}\n',
  );
  const metrics: MetricLine[] = [];
  const logs: WorkerLogLine[] = [];
  const worker = await startNode(t, dir, 'partial', { metrics, logs });
  assert.equal((await worker.predict([req('a', 'x')], 10_000)).code, 200);
  await worker.stop(500);
  assert.ok(
    metrics.some((m) => m.name === 'PredictionTime'),
    JSON.stringify(logs.map((l) => l.line)),
  );
  assert.ok(
    logs.some((l) => l.line === 'progress...'),
    JSON.stringify(logs.map((l) => l.line)),
  );
});

test('SIGINT (Ctrl-C reaches the whole process group) does not cut the batch in flight; the frontend decides when the worker stops', async (t) => {
  const dir = await tempDir(t);
  const gate = join(dir, 'gate');
  // the handler says when it has the batch, then holds it until the test opens the gate (after the SIGINT)
  await writeFile(
    join(dir, 'slow.mjs'),
    'import { existsSync } from "node:fs";\n' +
      'export async function handle(d) {\n' +
      '  if (d === null) return null;\n' +
      '  console.log("in handler");\n' +
      `  while (!existsSync(${JSON.stringify(gate)})) await new Promise((r) => setTimeout(r, 10));\n` +
      '  return d.map(() => "done");\n' +
      '}\n',
  );
  let entered!: () => void;
  const inHandler = new Promise<void>((resolve) => (entered = resolve));
  const worker = await startNode(t, dir, 'slow', { onLog: (l) => l.line === 'in handler' && entered() });
  const reply = worker.predict([req('a', 'x')], 10_000);
  await inHandler;
  process.kill(worker.pid, 'SIGINT');
  await writeFile(gate, '');
  const r = await reply;
  assert.equal(r.code, 200);
  assert.equal(r.predictions[0]!.body.toString(), 'done');
  await worker.stop(1000);
  assert.deepEqual(await worker.exited, { code: 0, signal: null });
});

test("context.modelYamlConfig: the manifest's configFile, parsed (yaml loads only for such a model)", async (t) => {
  const dir = await tempDir(t);
  await mkdir(join(dir, 'MAR-INF'));
  await writeFile(
    join(dir, 'MAR-INF', 'MANIFEST.json'),
    JSON.stringify({ runtime: 'node', model: { modelName: 'js', handler: 'cfg:handle', configFile: 'model-config.yaml' } }),
  );
  await writeFile(join(dir, 'model-config.yaml'), 'minWorkers: 1\nhandler:\n  labels: [cat, dog]\n');
  await writeFile(
    join(dir, 'cfg.mjs'),
    'export function handle(data, context) {\n  if (data === null) return null;\n  return data.map(() => context.modelYamlConfig);\n}\n',
  );
  const worker = await startNode(t, dir, 'cfg:handle');
  const reply = await worker.predict([req('a', 'x')], 10_000);
  assert.equal(reply.code, 200);
  assert.deepEqual(JSON.parse(reply.predictions[0]!.body.toString()), { minWorkers: 1, handler: { labels: ['cat', 'dog'] } });
});
