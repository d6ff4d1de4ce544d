/**
 * The shipped Python worker (src/runtime/python/mms_worker.py) driven over a raw socket: start lines, byte-exact
 * replies against the reference dumps (docs/worker-protocol.md §2.4), request decoding, the context API, every row of
 * the error table, metrics lines, load failures, crash, shutdown. Uses only the codec, not WorkerProcess.
 */

import assert from 'node:assert/strict';
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, realpathSync } from 'node:fs';
import { cp, mkdir, writeFile } from 'node:fs/promises';
import { createConnection, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { ReplyDecoder } from '../../src/runtime/frame-decoder.js';
import { type MetricLine, parseMetricLine, predictionTimeSeries } from '../../src/runtime/metrics.js';
import { encodeLoad, encodePredict, type InferenceRequest, type WorkerReply } from '../../src/runtime/protocol.js';
import { type OutputHandlers, routeReplyLines } from '../../src/runtime/worker-output.js';
import { packagePath } from '../../src/util/package-info.js';
import { FIXTURES, run, tempDir } from '../helpers/util.js';
import { ERROR_ROWS, hex, PREDICT_HEX, PREDICT_REPLY_HEX, STATUS_REPLY_HEX } from './otf-samples.js';

const WORKER = packagePath('src', 'runtime', 'python', 'mms_worker.py');
const PY_HANDLERS = join(FIXTURES, 'handlers', 'python');
const PYTHON = process.env['MAR_TEST_PYTHON'] ?? 'python3';

// docs/worker-protocol.md §2.4: the 209-byte PREDICT, the 92-byte reply and the 180-byte status/headers reply.
const PREDICT_209 = hex(PREDICT_HEX);
const REPLY_92 = hex(PREDICT_REPLY_HEX);
const REPLY_180 = hex(STATUS_REPLY_HEX);
// TorchServe / classic MMS LOAD reply for model "probe": code 200, "loaded model probe", -1.
const LOAD_REPLY_PROBE = Buffer.concat([hex('000000c8 00000012'), Buffer.from('loaded model probe'), hex('ffffffff')]);

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** One worker process plus one connection to it; every stdout/stderr line is kept. */
class PyWorker {
  readonly child: ChildProcessWithoutNullStreams;
  readonly lines: string[] = [];
  readonly exited: Promise<Exit>;
  socket: Socket | null = null;
  #waiters: Array<() => void> = [];
  #decoder = new ReplyDecoder();
  #raw: Buffer[] = [];
  #pending: { resolve: (r: { reply: WorkerReply; raw: Buffer }) => void; reject: (e: Error) => void } | null = null;

  constructor(args: string[], env: NodeJS.ProcessEnv = {}, cwd?: string) {
    this.child = spawn(PYTHON, [WORKER, ...args], {
      env: { ...process.env, ...env },
      cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    // 'close', not 'exit': the output is read to its end first, so lines printed just before exiting are there
    this.exited = once(this.child, 'close').then(([code, signal]) => ({ code, signal }) as Exit);
    for (const stream of [this.child.stdout, this.child.stderr]) {
      let rest = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        const parts = (rest + chunk).split('\n');
        rest = parts.pop() ?? '';
        this.lines.push(...parts);
        for (const w of this.#waiters.splice(0)) w();
      });
    }
  }

  /** Resolves with the first line matching; rejects if the process exits first. */
  async waitLine(match: (line: string) => boolean): Promise<string> {
    for (;;) {
      const found = this.lines.find(match);
      if (found !== undefined) return found;
      const more = new Promise<void>((resolve) => this.#waiters.push(resolve));
      const exit = this.exited.then(() => 'exit' as const);
      if ((await Promise.race([more, exit])) === 'exit') {
        const last = this.lines.find(match);
        if (last !== undefined) return last;
        throw new Error(`worker exited; output:\n${this.lines.join('\n')}`);
      }
    }
  }

  async connect(target: { path: string } | { port: number; host: string }): Promise<void> {
    await this.waitLine((l) => l === 'MMS worker started.');
    const socket = createConnection(target);
    await once(socket, 'connect');
    socket.on('data', (chunk: Buffer) => {
      this.#raw.push(chunk);
      for (const reply of this.#decoder.push(chunk)) {
        const raw = Buffer.concat(this.#raw);
        this.#raw = [];
        const p = this.#pending;
        this.#pending = null;
        p?.resolve({ reply, raw });
      }
    });
    socket.on('close', () => {
      this.#pending?.reject(new Error('connection closed'));
      this.#pending = null;
    });
    socket.on('error', () => {});
    this.socket = socket;
  }

  send(message: Buffer): Promise<{ reply: WorkerReply; raw: Buffer }> {
    assert.ok(this.socket && !this.#pending, 'one message in flight');
    return new Promise((resolve, reject) => {
      this.#pending = { resolve, reject };
      this.socket!.write(message);
    });
  }

  load(handler: string, o: { modelDir?: string; name?: string; batchSize?: number; gpuId?: number } = {}) {
    return this.send(
      encodeLoad({
        modelName: o.name ?? 'm',
        modelPath: o.modelDir ?? PY_HANDLERS,
        batchSize: o.batchSize ?? 1,
        handler,
        gpuId: o.gpuId ?? -1,
      }),
    );
  }

  async predict(batch: InferenceRequest[]): Promise<WorkerReply> {
    return (await this.send(encodePredict(batch))).reply;
  }

  /** Closes the connection (the worker exits on EOF) and waits for the exit. */
  async close(): Promise<Exit> {
    this.socket?.end();
    return this.exited;
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

/** A started and connected worker on a unix socket in a temp dir; killed after the test. */
async function startWorker(
  t: Parameters<typeof tempDir>[0],
  o: { env?: NodeJS.ProcessEnv; extraArgs?: string[] } = {},
): Promise<{ worker: PyWorker; sockPath: string }> {
  const dir = await tempDir(t, 'pyw-');
  const sockPath = join(dir, 'w.sock');
  const worker = new PyWorker(['--sock-type', 'unix', '--sock-name', sockPath, ...(o.extraArgs ?? [])], o.env);
  t.after(() => worker.kill());
  await worker.connect({ path: sockPath });
  return { worker, sockPath };
}

async function loaded(t: Parameters<typeof tempDir>[0], handler: string, modelDir = PY_HANDLERS, env?: NodeJS.ProcessEnv) {
  const { worker } = await startWorker(t, env ? { env } : {});
  const { reply } = await worker.load(handler, { modelDir });
  assert.equal(reply.code, 200, reply.message);
  return worker;
}

const req = (
  requestId: string,
  params: Array<[string, string | null, string | Buffer]> = [],
  headers: Array<[string, string]> = [],
): InferenceRequest => ({
  requestId,
  headers,
  params: params.map(([name, contentType, v]) => ({ name, contentType, value: Buffer.isBuffer(v) ? v : Buffer.from(v) })),
});

const bodyJson = (r: WorkerReply, i: number): unknown => JSON.parse(r.predictions[i]!.body.toString('utf8'));

test('prints [PID], the started line and the Python version in order, then serves one connection and exits 0 on EOF', async (t) => {
  const { worker, sockPath } = await startWorker(t);
  await worker.waitLine((l) => l.startsWith('Python runtime:'));
  assert.equal(worker.lines[0], `[PID] ${worker.child.pid}`);
  assert.equal(worker.lines[1], 'MMS worker started.');
  assert.match(worker.lines[2]!, /^Python runtime: 3\.\d+\.\d+$/);
  const { raw } = await worker.load('noop:handle', { name: 'probe', batchSize: 2 });
  assert.deepEqual(raw, LOAD_REPLY_PROBE);
  // One connection per process: the socket path is gone once the connection is accepted.
  assert.equal(existsSync(sockPath), false);
  assert.deepEqual(await worker.close(), { code: 0, signal: null });
});

test('PREDICT reply is byte-identical to the reference dumps (noop 92 bytes, status/headers 180 bytes)', async (t) => {
  const { worker } = await startWorker(t);
  await worker.load('noop:handle', { name: 'probe', batchSize: 2 });
  assert.deepEqual((await worker.send(PREDICT_209)).raw, REPLY_92);

  const { worker: w2 } = await startWorker(t);
  await w2.load('status_headers', { batchSize: 2 });
  assert.deepEqual((await w2.send(encodePredict([req('req-1'), req('req-2')]))).raw, REPLY_180);
});

test('data and request headers are built as MMS does: JSON parsed, text decoded, other types bytearray, params first', async (t) => {
  const w = await loaded(t, 'echo');
  const r = await w.predict([
    req(
      'a',
      [['body', 'application/json', '{"x": 1}']],
      [
        ['Content-Type', 'application/json'],
        ['X-Custom', 'abc'],
      ],
    ),
    req('b', [
      ['body', 'text/plain', 'h\u00e9llo'],
      ['q', null, 'v'],
      ['img', 'image/png', Buffer.from([0, 255])],
    ]),
    // A header named like a parameter overwrites the parameter's {"content-type"} entry.
    req('c', [['body', 'application/json', '[1, 2]']], [['body', 'header wins']]),
  ]);
  assert.equal(r.code, 200);
  assert.deepEqual(bodyJson(r, 0), {
    request_id: 'a',
    params: { body: { type: 'dict', value: { x: 1 }, content_type: 'application/json' } },
    param_names: ['body'],
    headers: { body: { 'content-type': 'application/json' }, 'Content-Type': 'application/json', 'X-Custom': 'abc' },
  });
  const b = bodyJson(r, 1) as {
    params: Record<string, { type: string; value: unknown; base64?: string; content_type: string }>;
    headers: object;
  };
  assert.deepEqual(b.params['body'], { type: 'str', value: 'h\u00e9llo', content_type: 'text/plain' });
  assert.deepEqual(b.params['q'], { type: 'bytearray', value: 'v', base64: 'dg==', content_type: '' });
  assert.equal(b.params['img']!.type, 'bytearray');
  assert.equal(b.params['img']!.base64, Buffer.from([0, 255]).toString('base64'));
  assert.deepEqual(b.headers, { body: { 'content-type': 'text/plain' }, q: { 'content-type': '' }, img: { 'content-type': 'image/png' } });
  assert.deepEqual((bodyJson(r, 2) as { headers: object }).headers, { body: 'header wins' });
  assert.equal(r.predictions[0]!.contentType, 'application/json');
});

test('invalid JSON does not kill the worker: the handler gets the raw bytes', async (t) => {
  const w = await loaded(t, 'echo');
  const r = await w.predict([req('a', [['body', 'application/json', '{not json']])]);
  assert.equal(r.code, 200);
  assert.deepEqual((bodyJson(r, 0) as { params: object }).params, {
    body: { type: 'bytearray', value: '{not json', base64: Buffer.from('{not json').toString('base64'), content_type: 'application/json' },
  });
  await w.waitLine((l) => l.includes("Invalid JSON in parameter 'body' of request a")); // the log line and the reply travel on different channels
  assert.equal((await w.predict([req('b', [['body', 'application/json', '{"ok": true}']])])).code, 200);
});

test('MMS_DECODE_INPUT_REQUEST=false (or TS_DECODE_INPUT_REQUEST=false) leaves every value a bytearray', async (t) => {
  for (const name of ['MMS_DECODE_INPUT_REQUEST', 'TS_DECODE_INPUT_REQUEST']) {
    const w = await loaded(t, 'echo', PY_HANDLERS, { [name]: 'false' });
    const r = await w.predict([
      req('a', [
        ['body', 'application/json', '{"x": 1}'],
        ['t', 'text/plain', 'hi'],
      ]),
    ]);
    const params = (bodyJson(r, 0) as { params: Record<string, { type: string }> }).params;
    assert.equal(params['body']!.type, 'bytearray', name);
    assert.equal(params['t']!.type, 'bytearray', name);
  }
});

/** A model dir holding one fixture handler module, a manifest naming it and `config.yaml`, and that config file. */
async function modelWithConfig(t: Parameters<typeof tempDir>[0], module: string, manifest: object, configYaml: string): Promise<string> {
  const modelDir = await tempDir(t, 'pyw-model-');
  await cp(join(PY_HANDLERS, `${module}.py`), join(modelDir, `${module}.py`));
  await mkdir(join(modelDir, 'MAR-INF'));
  await writeFile(join(modelDir, 'MAR-INF', 'MANIFEST.json'), JSON.stringify(manifest));
  await writeFile(join(modelDir, 'config.yaml'), configYaml);
  return modelDir;
}

test('context: model name, manifest, system properties, request ids, headers, response status/headers, cwd', async (t) => {
  const manifest = { model: { modelName: 'ctx', handler: 'context_api:handle', configFile: 'config.yaml' }, runtime: 'python3' };
  const modelDir = await modelWithConfig(
    t,
    'context_api',
    manifest,
    '# model config\nminWorkers: 1\nhandler:\n  threshold: 0.5  # tuned\n  labels: [a, "b c"]\n',
  );
  const { worker: w } = await startWorker(t, { env: { MAR_SERVER_VERSION: '9.8.7' } });
  assert.equal((await w.load('context_api:handle', { modelDir, name: 'ctx', batchSize: 4, gpuId: 0 })).reply.code, 200);
  const r = await w.predict([req('r0', [], [['X-Probe', 'one']]), req('r1', [['body', 'text/plain', 'x']], [['X-Probe', 'two']])]);
  assert.equal(r.code, 200);
  const c0 = bodyJson(r, 0) as Record<string, unknown>;
  const c1 = bodyJson(r, 1) as Record<string, unknown>;
  assert.equal(c0['model_name'], 'ctx');
  assert.deepEqual(c0['manifest'], manifest);
  const realModelDir = realpathSync(modelDir);
  assert.equal(c0['cwd'], realModelDir);
  assert.deepEqual(c0['system_properties'], {
    model_dir: realModelDir,
    gpu_id: 0,
    batch_size: 4,
    server_name: 'MMS',
    server_version: '9.8.7',
    limit_max_image_pixels: true,
  });
  assert.equal(c0['model_dir_on_path'], true);
  assert.deepEqual(c0['model_yaml_config'], { minWorkers: 1, handler: { threshold: 0.5, labels: ['a', 'b c'] } });
  assert.deepEqual(c0['request_ids'], { '0': 'r0', '1': 'r1' });
  assert.equal(c1['request_id'], 'r1');
  assert.equal(c1['header'], 'two');
  assert.equal(c1['processor_header'], 'two');
  assert.deepEqual(c1['all_headers'], { body: { 'content-type': 'text/plain' }, 'X-Probe': 'two' });
  assert.deepEqual(c1['response_status'], [201, 'P1']);
  assert.deepEqual(c1['processor_status'], [201, 'P1']);
  assert.equal(c1['response_content_type'], 'application/json');
  assert.deepEqual(c1['response_headers'], { 'X-Index': '1', 'content-type': 'application/json' });
  assert.equal(c0['has_metrics'], true);
  // ...and what was set reaches the wire, per request.
  const p1 = r.predictions[1]!;
  assert.equal(p1.statusCode, 201);
  assert.equal(p1.reasonPhrase, 'P1');
  assert.equal(p1.contentType, 'application/json');
  assert.deepEqual(p1.headers, [
    ['X-Index', '1'],
    ['content-type', 'application/json'],
  ]);
  assert.equal(r.predictions[0]!.statusCode, 200);
  assert.equal(r.predictions[0]!.reasonPhrase, 'P0');
});

test('gpu id -1 means CPU: system_properties.gpu_id is None', async (t) => {
  const w = await loaded(t, 'context_api');
  const r = await w.predict([req('a')]);
  assert.equal((bodyJson(r, 0) as { system_properties: { gpu_id: unknown } }).system_properties.gpu_id, null);
  assert.equal((bodyJson(r, 0) as { manifest: unknown }).manifest, null);
});

test('results: bytes raw, str UTF-8, anything else JSON with indent 2; per-request batch order', async (t) => {
  const modelDir = await tempDir(t, 'pyw-model-');
  await writeFile(
    join(modelDir, 'kinds.py'),
    'def handle(data, context):\n' +
      '    if data is None:\n        return None\n' +
      '    return [b"\\x00\\xffraw", bytearray(b"ba"), "t\\u00e9xt", {"a": [1, 2]}, 0, None, 1.5, True][: len(data)]\n',
  );
  const w = await loaded(t, 'kinds', modelDir);
  const r = await w.predict(['0', '1', '2', '3', '4', '5', '6', '7'].map((id) => req(id)));
  assert.equal(r.code, 200);
  const bodies = r.predictions.map((p) => p.body);
  assert.deepEqual(bodies[0], Buffer.from([0, 0xff, 0x72, 0x61, 0x77]));
  assert.equal(bodies[1]!.toString(), 'ba');
  assert.equal(bodies[2]!.toString('utf8'), 't\u00e9xt');
  assert.equal(bodies[3]!.toString(), '{\n  "a": [\n    1,\n    2\n  ]\n}');
  assert.deepEqual(
    bodies.slice(4).map((b) => b.toString()),
    ['0', 'null', '1.5', 'true'],
  );
  assert.deepEqual(
    r.predictions.map((p) => p.requestId),
    ['0', '1', '2', '3', '4', '5', '6', '7'],
  );
  assert.ok(r.predictions.every((p) => p.contentType === null && p.statusCode === 200 && p.headers.length === 0));
});

test('error table: each handler failure answers the whole batch with its code and message, and the worker survives', async (t) => {
  const rows = ERROR_ROWS;
  await Promise.all(
    rows.map(async ([fn, code, message]) => {
      const w = await loaded(t, `errors:${fn}`);
      for (let round = 0; round < 2; round++) {
        const r = await w.predict([req('a', [['body', 'text/plain', 'x']]), req('b')]);
        assert.equal(r.code, code, fn);
        assert.equal(r.message, message, fn);
        assert.deepEqual(
          r.predictions.map((p) => [p.requestId, p.contentType, p.statusCode, p.reasonPhrase, p.headers, p.body.toString()]),
          [
            ['a', null, code, '', [], 'error'],
            ['b', null, code, '', [], 'error'],
          ],
          fn,
        );
      }
      assert.equal(w.child.exitCode, null, `${fn}: worker still running`);
    }),
  );
});

test('per-request status, phrase and headers are not sent when the batch fails', async (t) => {
  const modelDir = await tempDir(t, 'pyw-model-');
  await writeFile(
    join(modelDir, 'half.py'),
    'def handle(data, context):\n' +
      '    if data is None:\n        return None\n' +
      '    context.set_response_status(201, "Made", 0)\n' +
      '    context.set_response_header(0, "X-A", "1")\n' +
      '    return ["only one"]\n',
  );
  const w = await loaded(t, 'half', modelDir);
  const r = await w.predict([req('a'), req('b')]);
  assert.equal(r.code, 503);
  assert.deepEqual(
    r.predictions.map((p) => [p.statusCode, p.reasonPhrase, p.headers.length]),
    [
      [503, '', 0],
      [503, '', 0],
    ],
  );
});

test('metrics: with MAR_WORKER_METRICS=0 (the frontend drops them) no [METRICS] line is printed, the replies are the same', async (t) => {
  const { worker: w } = await startWorker(t, { env: { MAR_WORKER_METRICS: '0' } });
  assert.equal((await w.load('mms_imports', { name: 'mi' })).reply.code, 200);
  const r = await w.predict([req('r1', [['body', 'application/json', '{"error": true}']]), req('r2')]);
  assert.equal(r.code, 200);
  assert.equal(r.predictions.length, 2);
  assert.equal((await w.close()).code, 0);
  assert.deepEqual(
    w.lines.filter((l) => l.includes('[METRICS]')),
    [],
  );
});

test("metrics: with MAR_WORKER_METRICS=reply a successful batch's lines ride in its reply's message, not on stdout", async (t) => {
  const { worker: w } = await startWorker(t, { env: { MAR_WORKER_METRICS: 'reply' } });
  assert.equal((await w.load('mms_imports', { name: 'mi' })).reply.code, 200);
  // LOAD's metrics stay on stdout
  assert.ok(parseMetricLine(await w.waitLine((l) => l.startsWith('[METRICS]LoadCount'))));
  const r = await w.predict([req('r1'), req('r2')]);
  assert.equal(r.code, 200);
  const [first, ...rest] = r.message.split('\n');
  assert.equal(first, 'Prediction success');
  const carried = rest.map((l) => parseMetricLine(l));
  assert.ok(
    carried.every((m) => m !== null),
    r.message,
  );
  const names = carried.map((m) => m!.name);
  assert.ok(names.includes('Requests') && names.includes('Custom'), names.join());
  const pt = carried.find((m) => m!.name === 'PredictionTime');
  assert.deepEqual(pt?.requestIds, ['r1', 'r2']);
  // a failed batch's message is the handler's, alone
  const failed = await w.predict([req('r3', [['body', 'application/json', '{"fail": "teapot"}']])]);
  assert.deepEqual([failed.code, failed.message], [418, 'teapot']);
  assert.equal((await w.close()).code, 0);
  const printed = w.lines.filter((l) => l.startsWith('[METRICS]')).map((l) => parseMetricLine(l)!);
  assert.ok(!printed.some((m) => m.requestIds.includes('r1')), 'the carried lines are not printed too');
});

test('metrics: with MAR_WORKER_METRICS=reply and a handler that records none, PredictionTime rides short and reads as its whole line', async (t) => {
  const { worker: w } = await startWorker(t, { env: { MAR_WORKER_METRICS: 'reply' } });
  assert.equal((await w.load('noop', { name: 'n' })).reply.code, 200);
  const before = Math.floor(Date.now() / 1000);
  const reply = await w.predict([req('r1'), req('r2')]);
  const after = Math.ceil(Date.now() / 1000);
  assert.match(reply.message, /^Prediction success\n\[P\]\d+,\d+$/);
  const got: MetricLine[] = [];
  const handlers: OutputHandlers = {
    inHandshake: () => false,
    onPid: () => {},
    onStarted: () => {},
    onMetric: (m) => got.push(m),
    predictionTime: predictionTimeSeries('n', 'host-1'),
    log: (_stream, line) => assert.fail(`logged: ${line}`),
  };
  routeReplyLines(reply, handlers);
  assert.equal(reply.message, 'Prediction success');
  assert.equal(got.length, 1);
  const m = got[0]!;
  assert.deepEqual(
    [m.name, m.unit, m.hostname, m.requestIds, m.dimensions],
    [
      'PredictionTime',
      'Milliseconds',
      'host-1',
      ['r1', 'r2'],
      [
        ['ModelName', 'n'],
        ['Level', 'Model'],
      ],
    ],
  );
  assert.ok(m.value >= 0 && m.value < 1000, String(m.value));
  assert.ok(m.timestamp >= before && m.timestamp <= after, `${m.timestamp} in [${before}, ${after}]`);
  // the whole line, as the worker prints it when nothing reads replies: the same metric
  const { raw, ...fields } = parseMetricLine(`[METRICS]${m.raw}`)!;
  assert.deepEqual(fields, {
    name: m.name,
    unit: m.unit,
    value: m.value,
    dimensions: m.dimensions,
    dimensionsText: m.dimensionsText,
    hostname: m.hostname,
    timestamp: m.timestamp,
    requestIds: m.requestIds,
  });
  assert.equal(raw, m.raw);
  assert.equal((await w.close()).code, 0);
  assert.deepEqual(
    w.lines.filter((l) => l.includes('[METRICS]')),
    [],
  );
});

test("metrics: with MAR_WORKER_METRICS=reply-sampled (Prometheus keeps a gauge's latest value) PredictionTime goes at most every 100 ms", async (t) => {
  const { worker: w } = await startWorker(t, { env: { MAR_WORKER_METRICS: 'reply-sampled' } });
  assert.equal((await w.load('noop', { name: 'n' })).reply.code, 200);
  const began = performance.now();
  let sent = 0;
  const n = 30;
  for (let i = 0; i < n; i++) {
    const r = await w.predict([req(`r${i}`)]);
    assert.equal(r.code, 200);
    const lines = r.message.split('\n');
    assert.equal(lines[0], 'Prediction success');
    if (i === 0) assert.match(lines[1] ?? '', /^\[P\]\d+,\d+$/, 'the first batch always carries it, short');
    sent += lines.length - 1;
  }
  const elapsedMs = performance.now() - began;
  assert.ok(sent >= 1 && sent <= 2 + Math.floor(elapsedMs / 100), `${sent} PredictionTime lines in ${n} batches over ${elapsedMs} ms`);
  assert.equal((await w.close()).code, 0);
  assert.deepEqual(
    w.lines.filter((l) => l.startsWith('[METRICS]PredictionTime')),
    [],
  );
});

test('metrics: handler metrics and PredictionTime are printed as [METRICS] lines after each message', async (t) => {
  const { worker: w } = await startWorker(t);
  assert.equal((await w.load('mms_imports', { name: 'mi' })).reply.code, 200);
  const load = parseMetricLine(await w.waitLine((l) => l.startsWith('[METRICS]LoadCount')));
  assert.ok(load);
  assert.equal(load.unit, 'Count');
  assert.deepEqual(load.dimensions, [
    ['ModelName', 'mi'],
    ['Level', 'Model'],
  ]);
  assert.match(load.requestIds[0] ?? '', /^[0-9a-f-]{36}$/);

  const r = await w.predict([req('r1', [['body', 'application/json', '{"error": true}']]), req('r2')]);
  assert.equal(r.code, 200);
  const line = await w.waitLine((l) => l.startsWith('[METRICS]PredictionTime'));
  const pt = parseMetricLine(line);
  assert.ok(pt);
  assert.equal(pt.unit, 'Milliseconds');
  assert.deepEqual(pt.requestIds, ['r1', 'r2']);
  const byName = new Map(
    w.lines
      .map((l) => parseMetricLine(l))
      .filter((m) => m !== null)
      .map((m) => [`${m.name}/${m.requestIds.join(',')}`, m]),
  );
  assert.equal(byName.get('Requests/r1')?.value, 1);
  assert.equal(byName.get('Requests/r2')?.value, 1);
  assert.equal(byName.get('Work/r1,r2')?.unit, 'Milliseconds');
  assert.equal(byName.get('Payload/r1,r2')?.unit, 'Kilobytes');
  assert.equal(byName.get('Load/r1,r2')?.unit, 'Percent');
  assert.equal(byName.get('Custom/r1,r2')?.value, 7);
  assert.deepEqual(byName.get('Oops/')?.dimensions, [['Level', 'Error']]);
  // Handlers written for MMS raise mms.service.PredictionException; ts.utils.util's works the same.
  const failed = await w.predict([req('r3', [['body', 'application/json', '{"fail": "teapot"}']])]);
  assert.deepEqual([failed.code, failed.message], [418, 'teapot']);
  const tsFailed = await w.predict([req('r4', [['body', 'application/json', '{"ts_fail": "ts says no"}']])]);
  assert.deepEqual([tsFailed.code, tsFailed.message], [419, 'ts says no']);
});

test('class entry point: one class is instantiated, initialize(context) runs at load, handle per batch', async (t) => {
  const w = await loaded(t, 'class_handler');
  const first = await w.predict([req('a')]);
  const second = await w.predict([req('a'), req('b')]);
  assert.deepEqual(bodyJson(first, 0), { initialized: true, model_name: 'm', call: 1, index: 0 });
  assert.deepEqual(bodyJson(second, 1), { initialized: true, model_name: 'm', call: 2, index: 1 });
});

test('a TorchServe-style handler subclassing BaseHandler runs without torch', async (t) => {
  const { worker: w } = await startWorker(t);
  assert.equal((await w.load('ts_base_handler', { name: 'tsb' })).reply.code, 200);
  const r = await w.predict([req('a', [['body', 'application/json', '[1, 2, 3]']]), req('b', [['body', 'application/json', '[20]']])]);
  assert.equal(r.code, 200);
  assert.deepEqual(
    [bodyJson(r, 0), bodyJson(r, 1)],
    [
      { sum: 6, label: 'small' },
      { sum: 20, label: 'big' },
    ],
  );
  const handlerTime = parseMetricLine(await w.waitLine((l) => l.startsWith('[METRICS]HandlerTime')));
  assert.deepEqual(handlerTime?.requestIds, ['a', 'b']);
  // The batch's metrics are printed in one write: PredictionTime is there, and @timed recorded nothing (no profile).
  await w.waitLine((l) => l.startsWith('[METRICS]PredictionTime'));
  assert.deepEqual(
    w.lines.filter((l) => /^\[METRICS\](ts_handler_|preprocess)/.test(l)),
    [],
  );
  const bad = await w.predict([req('c', [['body', 'text/plain', 'nope']])]);
  assert.deepEqual([bad.code, bad.message], [400, 'send a JSON list of numbers']);
});

test('@timed (ts.handler_utils.timer) records ts_handler_<method> when the model config says handler.profile: true', async (t) => {
  const manifest = { model: { modelName: 'tsb', handler: 'ts_base_handler', configFile: 'config.yaml' }, runtime: 'python3' };
  const w = await loaded(t, 'ts_base_handler', await modelWithConfig(t, 'ts_base_handler', manifest, 'handler:\n  profile: true\n'));
  assert.equal((await w.predict([req('a', [['body', 'application/json', '[1]']])])).code, 200);
  const timed = parseMetricLine(await w.waitLine((l) => l.startsWith('[METRICS]ts_handler_preprocess.')));
  assert.deepEqual([timed?.unit, timed?.requestIds], ['Milliseconds', ['a']]);
});

test('load failures are answered (500, 507 for MemoryError) with the cause, logged with the traceback, then exit 1', async (t) => {
  const cases: Array<[string, number, string]> = [
    ['load_fail', 500, 'Failed to load model lf: RuntimeError: weights file is corrupt'],
    ['load_fail:memory', 507, 'Failed to load model lf: MemoryError: model does not fit'],
    ['no_such_module', 500, "Failed to load model lf: ModuleNotFoundError: No module named 'no_such_module'"],
    [
      'errors:no_such_function',
      500,
      'Failed to load model lf: ValueError: Expected only one class in custom service code or a function entry point',
    ],
  ];
  await Promise.all(
    cases.map(async ([handler, code, message]) => {
      const { worker } = await startWorker(t);
      const { reply } = await worker.load(handler, { name: 'lf' });
      assert.equal(reply.code, code, handler);
      assert.ok(reply.message.startsWith(message), `${handler}: ${reply.message}`);
      assert.ok(!reply.message.includes('\n'));
      assert.deepEqual(await worker.exited, { code: 1, signal: null });
      assert.ok(worker.lines.includes('Traceback (most recent call last):'), handler);
    }),
  );
});

test('PREDICT before LOAD is answered with an error; an unknown command byte ends the worker with status 1', async (t) => {
  const { worker } = await startWorker(t);
  const r = await worker.predict([req('a')]);
  assert.deepEqual(
    [r.code, r.message, r.predictions.map((p) => [p.requestId, p.statusCode, p.body.toString()])],
    [500, 'No model loaded: send LOAD first', [['a', 500, 'error']]],
  );
  worker.socket!.write(Buffer.from('X'));
  assert.deepEqual(await worker.exited, { code: 1, signal: null });
  assert.ok(worker.lines.includes('Unknown command byte 0x58: closing the connection'));
});

test('a handler crash ends the process with its exit code and closes the connection', async (t) => {
  const w = await loaded(t, 'crash');
  await assert.rejects(w.predict([req('a')]), /connection closed/);
  assert.deepEqual(await w.exited, { code: 3, signal: null });
});

test('SIGTERM ends a worker stuck in a handler with exit code 0', async (t) => {
  const w = await loaded(t, 'hang');
  assert.equal((await w.predict([req('a', [['body', 'text/plain', 'ok']])])).predictions[0]!.body.toString(), 'OK');
  const pending = w.predict([req('b', [['body', 'text/plain', 'hang please']])]);
  pending.catch(() => {});
  await w.waitLine((l) => l.startsWith('hang: sleeping'));
  w.child.kill('SIGTERM');
  assert.deepEqual(await w.exited, { code: 0, signal: null });
  await assert.rejects(pending);
});

test('the model dir and the handler dir come first on sys.path: user modules shadow the compat package', async (t) => {
  const modelDir = await tempDir(t, 'pyw-model-');
  // The user's own "mms" package (e.g. vendored) wins over ours, and its PredictionException still works.
  await mkdir(join(modelDir, 'mms'));
  await writeFile(join(modelDir, 'mms', '__init__.py'), 'OWN = True\n');
  await writeFile(
    join(modelDir, 'mms', 'service.py'),
    'class PredictionException(Exception):\n    def __init__(self, message, error_code=500):\n' +
      '        self.message = message\n        self.error_code = error_code\n        super().__init__(message)\n',
  );
  await mkdir(join(modelDir, 'code', 'sub'), { recursive: true });
  await writeFile(join(modelDir, 'code', 'sub', 'helper.py'), 'VALUE = "from handler dir"\n');
  await writeFile(
    join(modelDir, 'code', 'sub', 'entry.py'),
    'import mms\nimport helper\nfrom mms.service import PredictionException\n' +
      'def run(data, context):\n' +
      '    if data is None:\n        return None\n' +
      '    if data[0].get("body") == "fail":\n        raise PredictionException("own class", 451)\n' +
      '    return [{"own_mms": getattr(mms, "OWN", False), "helper": helper.VALUE}] * len(data)\n',
  );
  const w = await loaded(t, 'code/sub/entry.py:run', modelDir);
  assert.deepEqual(bodyJson(await w.predict([req('a')]), 0), { own_mms: true, helper: 'from handler dir' });
  const failed = await w.predict([req('b', [['body', 'text/plain', 'fail']])]);
  assert.deepEqual([failed.code, failed.message], [451, 'own class']);
});

test("user modules named like the worker's own modules and directories are the user's (main, codec, serve, tests, compat)", async (t) => {
  const modelDir = await tempDir(t, 'pyw-model-');
  const names = ['codec', 'inputs', 'loading', 'serve', 'stdio', 'tests', 'compat'];
  for (const name of names) await writeFile(join(modelDir, `${name}.py`), `OWNER = "user ${name}"\n`);
  await writeFile(
    join(modelDir, 'main.py'),
    `import ${names.join(', ')}\n` +
      'def handle(data, context):\n' +
      '    if data is None:\n        return None\n' +
      `    return [[m.OWNER for m in (${names.join(', ')})]] * len(data)\n`,
  );
  const w = await loaded(t, 'main:handle', modelDir);
  assert.deepEqual(
    bodyJson(await w.predict([req('a')]), 0),
    names.map((n) => `user ${n}`),
  );
});

test('a partial line printed by the handler is completed before the worker prints its own lines', async (t) => {
  const modelDir = await tempDir(t, 'pyw-model-');
  await writeFile(
    join(modelDir, 'partial.py'),
    'import sys\n' +
      'def handle(data, context):\n' +
      '    print("progress...", end="")\n' +
      '    sys.stderr.write("warn without newline")\n' +
      '    return None if data is None else ["OK"] * len(data)\n',
  );
  const w = await loaded(t, 'partial', modelDir);
  await w.predict([req('a')]);
  const metric = await w.waitLine((l) => l.includes('[METRICS]'));
  assert.ok(metric.startsWith('[METRICS]PredictionTime'), metric);
  assert.ok(parseMetricLine(metric));
  assert.ok(w.lines.includes('progress...'));
  assert.ok(w.lines.includes('warn without newline'));
});

test('accepts the extra MMS command-line arguments and serves TCP on 127.0.0.1', async (t) => {
  const probe = createServer();
  probe.listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const port = (probe.address() as { port: number }).port;
  probe.close();
  await once(probe, 'close');
  const w = new PyWorker([
    '--sock-type',
    'tcp',
    '--host',
    '127.0.0.1',
    '--port',
    String(port),
    '--handler',
    'x:handle',
    '--model-path',
    '/nowhere',
    '--model-name',
    'x',
    '--preload-model',
    'false',
    '--tmp-dir',
    '/tmp',
  ]);
  t.after(() => w.kill());
  await w.connect({ port, host: '127.0.0.1' });
  assert.equal((await w.load('noop')).reply.code, 200);
  const r = await w.predict([req('a')]);
  assert.equal(r.predictions[0]!.body.toString(), 'OK');
  assert.deepEqual(await w.close(), { code: 0, signal: null });
});

test('without a connection within the accept timeout the worker says so and exits 1, removing its socket', async (t) => {
  const dir = await tempDir(t, 'pyw-');
  const sockPath = join(dir, 'w.sock');
  const w = new PyWorker(['--sock-type', 'unix', '--sock-name', sockPath, '--accept-timeout', '0.3']);
  t.after(() => w.kill());
  assert.deepEqual(await w.exited, { code: 1, signal: null });
  assert.ok(
    w.lines.some((l) => l.startsWith('Backend worker did not receive connection in: 0.3 s')),
    w.lines.join('\n'),
  );
  assert.equal(existsSync(sockPath), false);
});

test('the example model (seed document handler) and the iris numpy classifier serve predictions', async (t) => {
  const example = await loaded(t, 'model_handler:handle', join(FIXTURES, 'models', 'example'));
  assert.equal((await example.predict([req('a', [['body', 'text/plain', 'hi']])])).predictions[0]!.body.toString(), 'OK');

  const iris = await loaded(t, 'model_handler:handle', join(FIXTURES, 'models', 'iris'));
  const r = await iris.predict([
    req('setosa', [['body', 'application/json', '{"features": [5.1, 3.5, 1.4, 0.2]}']]),
    req('two', [['body', 'application/json', '{"features": [[7.0, 3.2, 4.7, 1.4], [6.3, 3.3, 6.0, 2.5]]}']]),
    req('csv', [['body', 'text/csv', '5.9,3.0,5.1,1.8']]),
    req('bad', [['body', 'application/json', '{"features": [1, 2]}']]),
  ]);
  assert.equal(r.code, 200);
  assert.equal((bodyJson(r, 0) as { class: string }).class, 'setosa');
  assert.deepEqual(
    (bodyJson(r, 1) as Array<{ class: string }>).map((x) => x.class),
    ['versicolor', 'virginica'],
  );
  const csv = bodyJson(r, 2) as { class: string; probabilities: Record<string, number> };
  assert.equal(csv.class, 'virginica');
  assert.ok(Math.abs(Object.values(csv.probabilities).reduce((a, b) => a + b, 0) - 1) < 1e-4);
  assert.equal(r.predictions[3]!.statusCode, 400);
  assert.deepEqual(bodyJson(r, 3), { error: 'each row needs exactly 4 features' });
});

test('the Python unit tests of the worker and the compat package pass (handler strings, YAML subset, metrics, context)', async () => {
  const r = await run(PYTHON, ['-m', 'unittest', 'discover', '-s', packagePath('src', 'runtime', 'python', 'tests')]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stderr, /^OK/m);
});

test('a PredictionException code that does not fit the wire (int32) is answered as 500 with its message; the worker survives', async (t) => {
  const modelDir = await tempDir(t, 'pyw-model-');
  await writeFile(
    join(modelDir, 'bigcode.py'),
    'from mms.service import PredictionException\n' +
      'def handle(data, context):\n' +
      '    if data is None:\n' +
      '        return None\n' +
      '    raise PredictionException("code out of range", 2 ** 40)\n',
  );
  const w = await loaded(t, 'bigcode', modelDir);
  for (let round = 0; round < 2; round++) {
    const r = await w.predict([req('a')]);
    assert.deepEqual([r.code, r.message, r.predictions[0]!.statusCode], [500, 'code out of range', 500]);
  }
  assert.equal(w.child.exitCode, null);
});

test('a corrupt length field is refused, not allocated: over the cap the worker says so and exits 1', async (t) => {
  // PREDICT with one request whose parameter value claims 2^31-1 bytes (the worker would wait for them in a 2 GB buffer).
  const huge = Buffer.concat([
    Buffer.from('I'),
    hex('00000001'),
    Buffer.from('a'),
    hex('ffffffff'),
    hex('00000004'),
    Buffer.from('body'),
    hex('00000000'),
    hex('7fffffff'),
  ]);
  const w = await loaded(t, 'noop');
  w.socket!.write(huge);
  assert.deepEqual(await w.exited, { code: 1, signal: null });
  assert.ok(
    w.lines.some((l) =>
      l.startsWith('Malformed message from the frontend: a parameter value of 2147483647 bytes is over the limit of 268435456 bytes'),
    ),
    w.lines.join('\n'),
  );

  // LOAD with a model name of 2^31-1 bytes.
  const { worker: w2 } = await startWorker(t);
  w2.socket!.write(Buffer.concat([Buffer.from('L'), hex('7fffffff')]));
  assert.deepEqual(await w2.exited, { code: 1, signal: null });
  assert.ok(
    w2.lines.some((l) => l.includes('a LOAD field of 2147483647 bytes is over the limit')),
    w2.lines.join('\n'),
  );
});

test('MAR_WORKER_MAX_FIELD_BYTES sets the cap: a value within it is served, one over it ends the worker', async (t) => {
  const { worker } = await startWorker(t, { env: { MAR_WORKER_MAX_FIELD_BYTES: '100000' } });
  assert.equal((await worker.load('echo')).reply.code, 200);
  const ok = await worker.predict([req('a', [['body', null, Buffer.alloc(90_000, 1)]])]);
  assert.equal(ok.code, 200);
  worker.socket!.write(encodePredict([req('b', [['body', null, Buffer.alloc(100_001, 1)]])]));
  assert.deepEqual(await worker.exited, { code: 1, signal: null });
  assert.ok(worker.lines.some((l) => l.includes('a parameter value of 100001 bytes is over the limit of 100000 bytes')));
});
