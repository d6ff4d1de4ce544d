/**
 * WorkerProcess against real workers: one conformance suite run for the Python worker (C1's mms_worker.py)
 * and for the Node worker, over the fixture handlers in fixtures/handlers/{python,node}.
 */

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { chmod, mkdir, readdir, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { type TestContext, test } from 'node:test';
import { MarError } from '../../src/errors.js';
import { parseEntryPoint } from '../../src/handler/entry-point.js';
import { launchSpec, NODE_WORKER_SCRIPT, PYTHON_COMPAT_DIR, PYTHON_WORKER_SCRIPT, pythonLaunch } from '../../src/runtime/launchers.js';
import type { MetricLine } from '../../src/runtime/metrics.js';
import { type OpenedModel, openModel } from '../../src/runtime/model.js';
import type { InferenceRequest, WorkerReply } from '../../src/runtime/protocol.js';
import { type WorkerLogLine, WorkerProcess, type WorkerProcessOptions } from '../../src/runtime/worker-process.js';
import { packagePath, TOOL_VERSION } from '../../src/util/package-info.js';
import { FIXTURES, run, tempDir } from '../helpers/util.js';
import { ERROR_ROWS, PREDICT_BATCH, STATUS_REPLY } from './otf-samples.js';

type Runtime = 'python' | 'node';

interface Started {
  worker: WorkerProcess;
  logs: WorkerLogLine[];
  metrics: MetricLine[];
  model: OpenedModel;
}

async function start(t: TestContext, runtime: Runtime, handler: string, options: Partial<WorkerProcessOptions> = {}): Promise<Started> {
  const model = await openModel(join(FIXTURES, 'handlers', runtime), { modelName: 'fx', handler, runtime });
  const logs: WorkerLogLine[] = [];
  const metrics: MetricLine[] = [];
  const worker = await WorkerProcess.start({
    id: '9000',
    model,
    batchSize: 4,
    log: (l) => logs.push(l),
    onMetric: (m) => metrics.push(m),
    startTimeoutMs: 30_000,
    ...options,
  });
  t.after(() => worker.stop(500));
  return { worker, logs, metrics, model };
}

const body = (text: string, contentType: string | null = 'text/plain'): InferenceRequest => ({
  requestId: `r-${text}`,
  headers: contentType ? [['Content-Type', contentType]] : [],
  params: [{ name: 'body', contentType, value: Buffer.from(text) }],
});

const json = (r: WorkerReply, i = 0): unknown => JSON.parse(r.predictions[i]!.body.toString('utf8'));

const isMar = (code: string, test?: (e: MarError) => boolean) => (e: unknown) =>
  e instanceof MarError && e.code === code && (test ? test(e) : true);

function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

for (const runtime of ['python', 'node'] as const) {
  test(`${runtime}: start, LOAD and PREDICT through the noop handler`, async (t) => {
    const { worker, metrics, logs } = await start(t, runtime, 'noop:handle');
    assert.equal(worker.state, 'ready');
    assert.ok(worker.pid > 0);
    assert.ok(worker.memoryUsage() > 1_000_000, 'RSS is read from /proc');
    const reply = await worker.predict([body('a'), body('b')], 10_000);
    assert.equal(reply.code, 200);
    assert.equal(reply.message, 'Prediction success');
    assert.deepEqual(
      reply.predictions.map((p) => [p.requestId, p.statusCode, p.reasonPhrase, p.contentType, p.body.toString()]),
      [
        ['r-a', 200, '', null, 'OK'],
        ['r-b', 200, '', null, 'OK'],
      ],
    );
    assert.equal(worker.state, 'ready');
    // Handshake lines are not logged; the runtime banner is.
    assert.ok(!logs.some((l) => l.line === 'MMS worker started.' || l.line.startsWith('[PID]')));
    assert.ok(logs.some((l) => l.line.includes('runtime:') && l.modelName === 'fx' && l.workerId === '9000' && l.stream === 'stdout'));
    // PredictionTime is printed after the reply; wait for the line rather than for time.
    while (!metrics.some((m) => m.name === 'PredictionTime')) await new Promise((r) => setImmediate(r));
    const pt = metrics.find((m) => m.name === 'PredictionTime')!;
    assert.equal(pt.unit, 'Milliseconds');
    assert.deepEqual(pt.requestIds, ['r-a', 'r-b']);
    assert.deepEqual(pt.dimensions, [
      ['ModelName', 'fx'],
      ['Level', 'Model'],
    ]);
  });

  test(`${runtime}: data decoding and request headers follow the reference (JSON, text, null content type)`, async (t) => {
    const { worker } = await start(t, runtime, 'echo:handle');
    const reply = await worker.predict(PREDICT_BATCH, 10_000);
    assert.equal(reply.code, 200);
    const [a, b] = [json(reply, 0) as Record<string, any>, json(reply, 1) as Record<string, any>];
    assert.equal(reply.predictions[0]!.contentType, 'application/json');
    assert.deepEqual(a['params']['body']['value'], { x: 1 });
    assert.equal(b['params']['body']['value'], 'hello');
    assert.equal(b['params']['q']['value'], 'v');
    if (runtime === 'python') {
      assert.deepEqual([a['params']['body']['type'], b['params']['body']['type'], b['params']['q']['type']], ['dict', 'str', 'bytearray']);
    } else {
      assert.deepEqual(
        [a['params']['body']['type'], b['params']['body']['type'], b['params']['q']['type']],
        ['object', 'string', 'Buffer'],
      );
    }
    assert.deepEqual(a['headers'], { body: { 'content-type': 'application/json' }, 'Content-Type': 'application/json', 'X-Custom': 'abc' });
    assert.deepEqual(b['headers'], { body: { 'content-type': 'text/plain' }, q: { 'content-type': '' }, 'Content-Type': 'text/plain' });
    assert.equal(a['request_id'], 'req-1');
  });

  test(`${runtime}: invalid JSON reaches the handler as raw bytes and the worker survives`, async (t) => {
    const { worker } = await start(t, runtime, 'echo:handle');
    const reply = await worker.predict([body('{not json', 'application/json')], 10_000);
    assert.equal(reply.code, 200);
    const p = (json(reply) as any)['params']['body'];
    assert.equal(p.type, runtime === 'python' ? 'bytearray' : 'Buffer');
    assert.equal(p.value, '{not json');
    assert.equal((await worker.predict([body('x')], 10_000)).code, 200);
  });

  test(`${runtime}: decodeInputRequest=false passes every value as bytes`, async (t) => {
    const { worker } = await start(t, runtime, 'echo:handle', { decodeInputRequest: false });
    const reply = await worker.predict(PREDICT_BATCH, 10_000);
    const bytesType = runtime === 'python' ? 'bytearray' : 'Buffer';
    assert.deepEqual((json(reply, 0) as any)['params']['body'], {
      type: bytesType,
      value: '{"x": 1}',
      base64: Buffer.from('{"x": 1}').toString('base64'),
      content_type: 'application/json',
    });
    assert.equal((json(reply, 1) as any)['params']['body']['type'], bytesType);
  });

  test(`${runtime}: per-request status, reason phrase, headers and content type (the reference 180-byte reply)`, async (t) => {
    const { worker } = await start(t, runtime, 'status_headers:handle');
    const reply = await worker.predict(
      [body('a', null), body('b', null)].map((r, i) => ({ ...r, requestId: `req-${i + 1}` })),
      10_000,
    );
    assert.deepEqual(reply, STATUS_REPLY);
  });

  test(`${runtime}: a batch reaches the handler whole, with the LOAD batch size in the context`, async (t) => {
    const { worker } = await start(t, runtime, 'batch_size:handle', { batchSize: 8 });
    const reply = await worker.predict([body('1'), body('2'), body('3')], 10_000);
    assert.deepEqual(
      reply.predictions.map((_, i) => json(reply, i)),
      Array(3).fill({ batch_length: 3, batch_size: 8 }),
    );
  });

  test(`${runtime}: every row of the error table, and the worker survives each`, async (t) => {
    await Promise.all(
      ERROR_ROWS.map(async ([fn, code, message]) => {
        const { worker } = await start(t, runtime, `errors:${fn}`);
        for (let i = 0; i < 2; i++) {
          const reply = await worker.predict([body('a'), body('b')], 10_000);
          assert.equal(reply.code, code, fn);
          assert.equal(reply.message, message, fn);
          assert.deepEqual(
            reply.predictions.map((p) => [p.requestId, p.statusCode, p.contentType, p.headers.length, p.body.toString()]),
            [
              ['r-a', code, null, 0, 'error'],
              ['r-b', code, null, 0, 'error'],
            ],
            fn,
          );
          assert.equal(worker.state, 'ready', fn);
        }
      }),
    );
  });

  test(`${runtime}: a class entry point is initialised once, then handles every batch`, async (t) => {
    const { worker } = await start(t, runtime, 'class_handler');
    await worker.predict([body('a')], 10_000);
    const reply = await worker.predict([body('a'), body('b')], 10_000);
    assert.deepEqual(json(reply, 1), { initialized: true, model_name: 'fx', call: 2, index: 1 });
  });

  test(`${runtime}: a failed LOAD rejects WORKER_LOAD_FAILED with the worker's message and leaves no process`, async (t) => {
    const err = await start(t, runtime, 'load_fail:handle').then(
      () => assert.fail('LOAD should fail'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof MarError && err.code === 'WORKER_LOAD_FAILED', String(err));
    const expected =
      runtime === 'python'
        ? 'Failed to load model fx: RuntimeError: weights file is corrupt'
        : 'Failed to load model fx: weights file is corrupt';
    assert.equal(err.message, expected);
    assert.equal(err.httpStatus, 500);
    assert.ok(processGone((err.details as { pid: number }).pid));
  });

  test(`${runtime}: a crash mid-predict rejects WORKER_DIED "Worker died." and emits 'exit' once`, async (t) => {
    const { worker } = await start(t, runtime, 'crash:handle');
    const exits: unknown[] = [];
    worker.on('exit', (info) => exits.push(info));
    const exited = once(worker, 'exit');
    await assert.rejects(
      worker.predict([body('a')], 10_000),
      isMar('WORKER_DIED', (e) => e.message === 'Worker died.' && e.httpStatus === 500),
    );
    await exited;
    assert.deepEqual(exits, [{ code: 3, signal: null }]);
    assert.equal(worker.state, 'dead');
    await assert.rejects(worker.predict([body('a')], 1_000), isMar('WORKER_DIED'));
    await worker.stop();
    assert.equal(exits.length, 1);
  });

  test(`${runtime}: a hanging handler times out, the process is killed and the caller gets WORKER_TIMEOUT`, async (t) => {
    const { worker } = await start(t, runtime, 'hang:handle');
    assert.equal((await worker.predict([body('ok')], 10_000)).code, 200);
    const exited = once(worker, 'exit');
    const t0 = Date.now();
    await assert.rejects(
      worker.predict([body('forever')], 300),
      isMar('WORKER_TIMEOUT', (e) => /300 ms/.test(e.message)),
    );
    assert.ok(Date.now() - t0 < 5_000);
    const [info] = (await exited) as [{ signal: string }];
    assert.equal(info.signal, 'SIGKILL');
    assert.ok(processGone(worker.pid));
  });

  test(`${runtime}: one batch in flight at a time; stop() closes the socket and the worker exits 0`, async (t) => {
    const { worker } = await start(t, runtime, 'noop:handle');
    const first = worker.predict([body('a')], 10_000);
    assert.equal(worker.state, 'busy');
    await assert.rejects(
      worker.predict([body('b')], 10_000),
      (e: unknown) => e instanceof MarError && /already has a batch in flight/.test(e.message),
    );
    assert.equal((await first).code, 200);
    const exits: unknown[] = [];
    worker.on('exit', (i) => exits.push(i));
    await worker.stop();
    assert.equal(worker.state, 'dead');
    assert.deepEqual(exits, [{ code: 0, signal: null }]);
    assert.equal(worker.memoryUsage(), 0);
  });

  test(`${runtime}: tcp socket on 127.0.0.1`, async (t) => {
    const { worker } = await start(t, runtime, 'noop:handle', { sockType: 'tcp' });
    assert.equal((await worker.predict([body('a')], 10_000)).predictions[0]!.body.toString(), 'OK');
  });

  test(`${runtime}: a reply field over maxResponseBytes is FRAME_TOO_LARGE and kills the worker`, async (t) => {
    const { worker } = await start(t, runtime, 'echo:handle', { maxResponseBytes: 200 });
    const exited = once(worker, 'exit');
    await assert.rejects(worker.predict([body('x'.repeat(300))], 10_000), isMar('FRAME_TOO_LARGE'));
    await exited;
    assert.equal(worker.state, 'dead');
  });
}

test('python: handlers importing the mms package record metrics that reach onMetric', async (t) => {
  const { worker, metrics } = await start(t, 'python', 'mms_imports:handle');
  const reply = await worker.predict([body('{"error": true}', 'application/json')], 10_000);
  // the batch's lines rode in the reply (launchers.ts): recorded by the time it resolves, its message is the worker's
  assert.deepEqual([reply.code, reply.message], [200, 'Prediction success']);
  // LOAD's lines come on stdout, which may be read after the socket
  while (!metrics.some((m) => m.name === 'LoadCount')) await new Promise((r) => setImmediate(r));
  const names = metrics.map((m) => `${m.name}.${m.unit}`);
  for (const n of ['LoadCount.Count', 'Requests.Count', 'Work.Milliseconds', 'Oops.unit', 'PredictionTime.Milliseconds']) {
    assert.ok(names.includes(n), `${n} in ${names.join(' ')}`);
  }
});

test('python: a PredictionException from the mms package keeps its code and message', async (t) => {
  const { worker } = await start(t, 'python', 'mms_imports:handle');
  const reply = await worker.predict([body('{"fail": "teapot"}', 'application/json')], 10_000);
  assert.deepEqual([reply.code, reply.message], [418, 'teapot']);
});

test('python: MemoryError while loading answers 507 and the worker is gone', async (t) => {
  const err = await start(t, 'python', 'load_fail:memory').then(
    () => assert.fail('LOAD should fail'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof MarError && err.code === 'WORKER_LOAD_FAILED' && err.httpStatus === 507, String(err));
  assert.match(err.message, /^Failed to load model fx: MemoryError: model does not fit/);
  assert.ok(processGone((err.details as { pid: number }).pid));
});

test('start fails cleanly: interpreter not found, early exit, startup timeout', async (t) => {
  const dir = await tempDir(t);
  await assert.rejects(
    start(t, 'python', 'noop:handle', { python: join(dir, 'no-such-python') }),
    isMar('WORKER_START_FAILED', (e) => /not found/.test(e.message)),
  );

  const exits = join(dir, 'exits.sh');
  await writeFile(exits, '#!/bin/sh\necho "cannot import anything" >&2\nexit 4\n');
  await chmod(exits, 0o755);
  const logs: WorkerLogLine[] = [];
  await assert.rejects(
    start(t, 'python', 'noop:handle', { python: exits, log: (l) => logs.push(l) }),
    isMar('WORKER_START_FAILED', (e) => /exited with code 4/.test(e.message)),
  );
  assert.deepEqual(
    logs.map((l) => [l.stream, l.line]),
    [['stderr', 'cannot import anything']],
  );

  const sleeps = join(dir, 'sleeps.sh');
  await writeFile(sleeps, '#!/bin/sh\nexec sleep 30\n');
  await chmod(sleeps, 0o755);
  const err = await start(t, 'python', 'noop:handle', { python: sleeps, startTimeoutMs: 300 }).then(
    () => assert.fail('should time out'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof MarError && err.code === 'WORKER_START_FAILED' && /did not start within 300 ms/.test(err.message));
  assert.ok(processGone((err.details as { pid: number }).pid));
});

test('socket dirs: removed when a process exits without stopping its workers, swept when their process was killed', async (t) => {
  const tmp = await tempDir(t);
  const child = spawn(process.execPath, ['-e', '']);
  const deadPid = await new Promise<number>((resolve) => child.on('exit', () => resolve(child.pid!)));
  await mkdir(join(tmp, `mar-w-${deadPid}-stale1`));
  const script =
    `const { openModel } = await import(${JSON.stringify(packagePath('dist', 'src', 'runtime', 'model.js'))});\n` +
    `const { WorkerProcess } = await import(${JSON.stringify(packagePath('dist', 'src', 'runtime', 'worker-process.js'))});\n` +
    `const m = await openModel(${JSON.stringify(join(FIXTURES, 'handlers', 'node'))}, { modelName: 'x', handler: 'noop', runtime: 'node' });\n` +
    `await WorkerProcess.start({ id: '1', model: m, batchSize: 1, log: () => {} });\n` +
    `console.log((await import('node:fs')).readdirSync(${JSON.stringify(tmp)}).join(','));\n` +
    `process.exit(0);\n`;
  const r = await run(process.execPath, ['--input-type=module', '-e', script], { env: { TMPDIR: tmp } });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout.trim(), /^mar-w-\d+-\w+$/, 'the stale dir was swept before the new one was made');
  assert.deepEqual(await readdir(tmp), [], 'the live dir was removed at exit');
});

test('launchers: python argv, PYTHONPATH order (handler dir, existing, model dir, compat last), env, cwd; node argv', () => {
  const entry = parseEntryPoint('sub/my_handler:handle');
  const base = { PATH: '/usr/bin', PYTHONPATH: '/site/extra', OMP_NUM_THREADS: '4' };
  const py = pythonLaunch({
    runtime: 'python3',
    modelDir: '/m',
    entry,
    socket: { type: 'unix', path: '/s/w.sock' },
    env: base,
    python: '/opt/py',
  });
  assert.equal(py.command, '/opt/py');
  assert.deepEqual(py.args, [PYTHON_WORKER_SCRIPT, '--sock-type', 'unix', '--sock-name', '/s/w.sock']);
  assert.equal(py.cwd, '/m');
  assert.equal(py.env['PYTHONPATH'], ['/m/sub', '/site/extra', '/m', PYTHON_COMPAT_DIR].join(':'));
  assert.deepEqual(
    [py.env['MMS_DECODE_INPUT_REQUEST'], py.env['MAR_SERVER_VERSION'], py.env['OMP_NUM_THREADS'], py.env['PATH']],
    ['true', TOOL_VERSION, '4', '/usr/bin'],
  );
  const tcp = pythonLaunch({
    runtime: 'python',
    modelDir: '/m',
    entry: parseEntryPoint('h'),
    socket: { type: 'tcp', host: '127.0.0.1', port: 9001 },
    env: {},
    decodeInputRequest: false,
  });
  assert.deepEqual([tcp.command, ...tcp.args.slice(1)], ['python3', '--sock-type', 'tcp', '--host', '127.0.0.1', '--port', '9001']);
  assert.deepEqual(
    [tcp.env['PYTHONPATH'], tcp.env['MMS_DECODE_INPUT_REQUEST'], tcp.env['OMP_NUM_THREADS']],
    [['/m', PYTHON_COMPAT_DIR].join(':'), 'false', '1'],
  );
  // torch's share of the cores: max(1, cores / workers), and passive OpenMP threads, unless the user chose
  // OMP_NUM_THREADS (then neither is set by us).
  assert.deepEqual([py.env['MAR_TORCH_THREADS'], py.env['OMP_WAIT_POLICY']], [undefined, undefined]);
  assert.equal(tcp.env['OMP_WAIT_POLICY'], 'PASSIVE');
  const cores = availableParallelism();
  const share = (workers: number, env: NodeJS.ProcessEnv = {}) =>
    pythonLaunch({ runtime: 'python', modelDir: '/m', entry, socket: { type: 'unix', path: '/s' }, env, workers }).env;
  assert.deepEqual(
    [share(1)['MAR_TORCH_THREADS'], share(2)['MAR_TORCH_THREADS'], share(cores * 4)['MAR_TORCH_THREADS']],
    [String(cores), String(Math.max(1, Math.floor(cores / 2))), '1'],
  );
  // Someone reads the worker's [METRICS] lines (the default): a batch's lines ride in its reply (launchers.ts).
  assert.equal(share(1)['MAR_WORKER_METRICS'], 'reply');
  assert.equal(
    pythonLaunch({ runtime: 'python', modelDir: '/m', entry, socket: { type: 'unix', path: '/s' }, env: {}, metrics: 'sampled' }).env[
      'MAR_WORKER_METRICS'
    ],
    'reply-sampled',
  );
  // Nobody reads them (no onMetric): the worker is told not to print them.
  assert.equal(
    pythonLaunch({ runtime: 'python', modelDir: '/m', entry, socket: { type: 'unix', path: '/s' }, env: {}, metrics: false }).env[
      'MAR_WORKER_METRICS'
    ],
    '0',
  );
  assert.equal(
    launchSpec({ runtime: 'node', modelDir: '/m', entry, socket: { type: 'unix', path: '/s' }, env: {}, metrics: false }).env[
      'MAR_WORKER_METRICS'
    ],
    '0',
  );
  // The interpreter: --python / the python key, else $MAR_PYTHON, else python3 on PATH.
  assert.equal(
    pythonLaunch({
      runtime: 'python',
      modelDir: '/m',
      entry,
      socket: { type: 'unix', path: '/s' },
      env: { MAR_PYTHON: '/opt/torch/bin/python3' },
    }).command,
    '/opt/torch/bin/python3',
  );
  const js = launchSpec({ runtime: 'node', modelDir: '/m', entry, socket: { type: 'unix', path: '/s/w.sock' }, env: {} });
  assert.deepEqual([js.command, ...js.args], [process.execPath, NODE_WORKER_SCRIPT, '--sock-type', 'unix', '--sock-name', '/s/w.sock']);
  assert.throws(
    () => launchSpec({ runtime: 'python2', modelDir: '/m', entry, socket: { type: 'unix', path: '/s' } }),
    isMar('RUNTIME_UNSUPPORTED'),
  );
});

test('a worker that closes its connection but stays alive is killed and reported as died (500, not 507)', async (t) => {
  const dir = await tempDir(t);
  await writeFile(
    join(dir, 'half_dead.py'),
    'import gc, socket, time\n\n\ndef handle(data, context):\n    if data is None:\n        return None\n' +
      '    for o in gc.get_objects():\n        if isinstance(o, socket.socket):\n            try:\n                o.shutdown(socket.SHUT_RDWR)\n' +
      '            except OSError:\n                pass\n    time.sleep(3600)\n',
  );
  const model = await openModel(dir, { modelName: 'half', handler: 'half_dead' });
  const worker = await WorkerProcess.start({ id: '1', model, batchSize: 1, log: () => {} });
  t.after(() => worker.stop(200));
  const t0 = Date.now();
  await assert.rejects(
    worker.predict([body('a')], 60_000),
    isMar('WORKER_DIED', (e) => e.httpStatus === 500),
  );
  assert.ok(Date.now() - t0 < 10_000);
  assert.equal((await worker.exited).signal, 'SIGKILL');
});

test('the response timeout counts from each batch: slow batches under it pass, one over it is killed at its own deadline', async (t) => {
  const { worker } = await start(t, 'python', 'slow:handle');
  // Each batch takes ~60% of the timeout: the timer armed for the first must not end the second.
  for (let i = 0; i < 3; i++) {
    const reply = await worker.predict([body('150')], 250);
    assert.equal(reply.code, 200);
  }
  // a deadline earlier than the timer armed for a previous batch still applies
  assert.equal((await worker.predict([body('1')], 60_000)).code, 200);
  const t0 = performance.now();
  await assert.rejects(
    worker.predict([body('5000')], 300),
    isMar('WORKER_TIMEOUT', (e) => /longer than 300 ms/.test(e.message)),
  );
  const waited = performance.now() - t0;
  assert.ok(waited >= 290 && waited < 2000, `timed out after ${Math.round(waited)} ms`);
});

test('handshake lines printed by the handler during LOAD are only logged: the pid stays the real one', async (t) => {
  const dir = await tempDir(t);
  await writeFile(
    join(dir, 'liar.py'),
    'print("[PID] 1", flush=True)\nprint("MMS worker started.", flush=True)\n' +
      'def handle(data, context):\n    return None if data is None else ["OK"] * len(data)\n',
  );
  const model = await openModel(dir, { modelName: 'liar', handler: 'liar' });
  t.after(() => model.release());
  const logs: WorkerLogLine[] = [];
  const worker = await WorkerProcess.start({ id: '1', model, batchSize: 1, log: (l) => logs.push(l) });
  t.after(() => worker.stop(500));
  assert.notEqual(worker.pid, 1);
  assert.ok(worker.memoryUsage() > 0, 'memory of the real process');
  assert.equal((await worker.predict([body('x')], 10_000)).code, 200);
  assert.ok(
    logs.some((l) => l.line === '[PID] 1'),
    'the line reaches the log',
  );
});

test('a [METRICS] line glued to handler output written past the line tracking (os.write) is still parsed', async (t) => {
  const dir = await tempDir(t);
  // A batch's metric lines ride in its reply unless there are more than 64 KiB of them: then they are printed, and a
  // raw write before them gets the first one glued to it.
  await writeFile(
    join(dir, 'rawout.py'),
    'import os\n' +
      'def handle(data, context):\n' +
      '    if data is None:\n' +
      '        return None\n' +
      '    os.write(1, b"raw write without newline")\n' +
      '    for i in range(1000):\n' +
      '        context.metrics.add_counter("Many%d" % i, 1)\n' +
      '    return ["OK"] * len(data)\n',
  );
  const model = await openModel(dir, { modelName: 'raw', handler: 'rawout' });
  t.after(() => model.release());
  const logs: WorkerLogLine[] = [];
  const metrics: MetricLine[] = [];
  const worker = await WorkerProcess.start({ id: '1', model, batchSize: 1, log: (l) => logs.push(l), onMetric: (m) => metrics.push(m) });
  const reply = await worker.predict([body('x')], 10_000);
  assert.deepEqual([reply.code, reply.message], [200, 'Prediction success']);
  await worker.stop(1000); // the output pipes are read to their end
  assert.equal(metrics.length, 1001);
  assert.deepEqual([metrics[0]!.name, metrics.at(-1)!.name], ['Many0', 'PredictionTime']);
  assert.ok(
    logs.some((l) => l.line === 'raw write without newline'),
    JSON.stringify(logs.map((l) => l.line)),
  );
});

/** Gone, or a zombie nobody has reaped yet (the process no longer runs either way). */
function notRunning(pid: number): boolean {
  try {
    return /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

test('a Python worker stuck in its handler exits by itself when the frontend is SIGKILLed (no orphan)', async (t) => {
  const script =
    `const { openModel } = await import(${JSON.stringify(packagePath('dist', 'src', 'runtime', 'model.js'))});\n` +
    `const { WorkerProcess } = await import(${JSON.stringify(packagePath('dist', 'src', 'runtime', 'worker-process.js'))});\n` +
    `const m = await openModel(${JSON.stringify(join(FIXTURES, 'handlers', 'python'))}, { modelName: 'x', handler: 'hang:handle' });\n` +
    `let w;\n` +
    `w = await WorkerProcess.start({ id: '1', model: m, batchSize: 1, log: (l) => { if (/sleeping forever/.test(l.line)) console.log('HUNG ' + w.pid); } });\n` +
    `w.predict([{ requestId: 'r', headers: [], params: [{ name: 'body', contentType: null, value: Buffer.from('x') }] }], 600000).catch(() => {});\n`;
  const frontend = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => frontend.kill('SIGKILL'));
  const lines = createInterface({ input: frontend.stdout });
  const [line] = (await once(lines, 'line')) as [string];
  const pid = Number(/^HUNG (\d+)$/.exec(line)![1]);
  t.after(() => void (notRunning(pid) || process.kill(pid, 'SIGKILL')));
  frontend.kill('SIGKILL'); // no exit hook runs: only the worker itself can notice
  await once(frontend, 'exit');
  const deadline = Date.now() + 10_000;
  // Condition wait: the worker checks its parent once a second.
  while (!notRunning(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.ok(notRunning(pid), `worker ${pid} outlived its frontend`);
});
