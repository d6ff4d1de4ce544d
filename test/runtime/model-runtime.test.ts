import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { MarError } from '../../src/errors.js';
import { openModel } from '../../src/runtime/model.js';
import { ModelRuntime, type ModelRuntimeOptions } from '../../src/runtime/model-runtime.js';
import type { InferenceRequest } from '../../src/runtime/protocol.js';
import { FIXTURES, tempDir } from '../helpers/util.js';

const HANDLERS = join(FIXTURES, 'handlers', 'python');
let seq = 0;

function textRequest(body: string): InferenceRequest {
  return {
    requestId: `req-${++seq}`,
    headers: [['Content-Type', 'text/plain']],
    params: [{ name: 'body', contentType: 'text/plain', value: Buffer.from(body) }],
  };
}

/** A started runtime on one of the fixture handlers, closed and released after the test. */
async function runtimeFor(
  t: TestContext,
  handler: string,
  options: Partial<Omit<ModelRuntimeOptions, 'model'>> = {},
): Promise<ModelRuntime> {
  const model = await openModel(HANDLERS, { modelName: 'm', handler });
  const runtime = new ModelRuntime({ model, log: () => {}, onEvent: () => {}, backoffMs: [50], ...options });
  t.after(async () => {
    await runtime.close({ graceMs: 1000 });
    await model.release();
  });
  const started = await runtime.start();
  assert.equal(started.failed, 0, started.error?.message);
  return runtime;
}

const isMar = (code: string, status?: number, message?: string | RegExp) => (e: unknown) => {
  assert.ok(e instanceof MarError, `expected a MarError, got ${String(e)}`);
  assert.equal(e.code, code);
  if (status !== undefined) assert.equal(e.httpStatus, status);
  if (typeof message === 'string') assert.equal(e.message, message);
  else if (message) assert.match(e.message, message);
  return true;
};

const NO_WORKER = 'No worker is available to serve request for model: m. Consider increasing job queue size.';

describe('ModelRuntime with real Python workers', () => {
  it('concurrent submits arrive at the handler as one batch, and a full batch does not wait for the delay', async (t) => {
    // A minute of max_batch_delay: waiting for it is unmistakable, however slow the machine is today.
    const rt = await runtimeFor(t, 'batch_size', { batchSize: 4, maxBatchDelayMs: 60_000 });
    const t0 = performance.now();
    const results = await Promise.all([1, 2, 3, 4].map((i) => rt.submit(textRequest(`x${i}`))));
    const elapsed = performance.now() - t0;
    for (const r of results) assert.deepEqual(JSON.parse(r.body.toString()), { batch_length: 4, batch_size: 4 });
    assert.ok(elapsed < 30_000, `a full batch leaves at once, not after the 60 s delay (${elapsed.toFixed(0)} ms)`);
  });

  it('a partial batch leaves after max_batch_delay', async (t) => {
    const rt = await runtimeFor(t, 'batch_size', { batchSize: 8, maxBatchDelayMs: 150 });
    const t0 = performance.now();
    const results = await Promise.all([1, 2, 3].map((i) => rt.submit(textRequest(`x${i}`))));
    const elapsed = performance.now() - t0;
    for (const r of results) assert.equal(JSON.parse(r.body.toString()).batch_length, 3);
    assert.ok(elapsed >= 145, `waited for more requests (${elapsed.toFixed(0)} ms)`);
  });

  it('predictions are matched to their requests; per-request status, headers and content type pass through', async (t) => {
    const rt = await runtimeFor(t, 'status_headers', { batchSize: 2, maxBatchDelayMs: 1000 });
    const [a, b] = [textRequest('a'), textRequest('b')];
    const [ra, rb] = await Promise.all([rt.submit(a), rt.submit(b)]);
    assert.equal(ra.requestId, a.requestId);
    assert.equal(rb.requestId, b.requestId);
    assert.equal(ra.statusCode, 201);
    assert.equal(ra.reasonPhrase, 'Created Thing');
    assert.equal(ra.contentType, 'text/plain');
    assert.deepEqual(
      ra.headers.find(([k]) => k === 'X-Foo'),
      ['X-Foo', 'bar'],
    );
    assert.equal(rb.statusCode, 404);
  });

  it('a handler error fails every job of the batch with the reply code and message', async (t) => {
    const rt = await runtimeFor(t, 'errors:prediction_exception', { batchSize: 2, maxBatchDelayMs: 1000 });
    const settled = await Promise.allSettled([rt.submit(textRequest('a')), rt.submit(textRequest('b'))]);
    for (const s of settled) {
      assert.equal(s.status, 'rejected');
      isMar('PREDICTION_FAILED', 599, 'Some Prediction Error')(s.reason);
    }
    // The worker survives handler errors: same process, still serving.
    assert.equal(rt.health().running, 1);
  });

  it('a full queue answers 503 with MMS message; queued requests are still served', async (t) => {
    const rt = await runtimeFor(t, 'slow', { jobQueueSize: 2 });
    const inFlight = rt.submit(textRequest('300'));
    const queued = [rt.submit(textRequest('1')), rt.submit(textRequest('1'))];
    assert.equal(rt.queueLength, 2);
    await assert.rejects(rt.submit(textRequest('1')), isMar('QUEUE_FULL', 503, NO_WORKER));
    for (const r of await Promise.all([inFlight, ...queued])) assert.equal(r.body.toString(), 'OK');
  });

  it('a model with no workers answers 503 at once', async (t) => {
    const model = await openModel(HANDLERS, { modelName: 'm', handler: 'noop' });
    const rt = new ModelRuntime({ model, minWorkers: 0, onEvent: () => {} });
    t.after(async () => {
      await rt.close();
      await model.release();
    });
    await rt.start();
    assert.deepEqual(rt.health(), { running: 0, configured: 0 });
    await assert.rejects(rt.submit(textRequest('x')), isMar('SERVICE_UNAVAILABLE', 503, NO_WORKER));
  });

  it('an aborted request leaves the queue and is answered with REQUEST_CANCELLED', async (t) => {
    const rt = await runtimeFor(t, 'slow');
    const busy = rt.submit(textRequest('200'));
    const ac = new AbortController();
    const cancelled = rt.submit(textRequest('1'), ac.signal);
    assert.equal(rt.queueLength, 1);
    ac.abort();
    await assert.rejects(cancelled, isMar('REQUEST_CANCELLED'));
    assert.equal(rt.queueLength, 0);
    assert.equal((await busy).body.toString(), 'OK');
  });

  it('submitCancellable: cancel() takes a queued request out of the queue; cancelling an answered one changes nothing', async (t) => {
    const rt = await runtimeFor(t, 'slow');
    const busy = rt.submitCancellable(textRequest('200'));
    const queued = rt.submitCancellable(textRequest('1'));
    assert.equal(rt.queueLength, 1);
    queued.cancel();
    await assert.rejects(queued.promise, isMar('REQUEST_CANCELLED'));
    assert.equal(rt.queueLength, 0);
    assert.equal((await busy.promise).body.toString(), 'OK');
    busy.cancel();
    const next = rt.submitCancellable(textRequest('1'));
    assert.equal((await next.promise).body.toString(), 'OK', 'the worker still serves after the cancels');
  });

  it('submitTo: the answer reaches its callback; a full queue is refused at once; job.cancel() withdraws a queued one', async (t) => {
    const rt = await runtimeFor(t, 'slow', { jobQueueSize: 1 });
    const outcome = (): { promise: Promise<string>; onResult: (r: { body: Buffer }) => void; onError: (e: MarError) => void } => {
      let onResult!: (r: { body: Buffer }) => void;
      let onError!: (e: MarError) => void;
      const promise = new Promise<string>((resolve, reject) => {
        onResult = (r) => resolve(r.body.toString());
        onError = reject;
      });
      return { promise, onResult, onError };
    };
    const busy = outcome();
    assert.ok(rt.submitTo(textRequest('200'), busy.onResult, busy.onError));
    const queued = outcome();
    const job = rt.submitTo(textRequest('1'), queued.onResult, queued.onError);
    assert.equal(rt.queueLength, 1);
    // the queue holds one: the next is refused before submitTo returns
    let refused: MarError | null = null;
    rt.submitTo(
      textRequest('1'),
      () => assert.fail('answered a refused request'),
      (e) => (refused = e),
    );
    assert.ok(refused, 'QUEUE_FULL arrives synchronously');
    isMar('QUEUE_FULL', 503, NO_WORKER)(refused);
    job!.cancel();
    await assert.rejects(queued.promise, isMar('REQUEST_CANCELLED'));
    assert.equal(rt.queueLength, 0);
    assert.equal(await busy.promise, 'OK');
    const next = outcome();
    rt.submitTo(textRequest('1'), next.onResult, next.onError);
    assert.equal(await next.promise, 'OK', 'the worker still serves after the cancel');
  });

  it('close() lets the in-flight batch finish and answers queued requests with 503: none is left pending', async (t) => {
    const rt = await runtimeFor(t, 'slow');
    const inFlight = rt.submit(textRequest('300'));
    const queued = Promise.allSettled([rt.submit(textRequest('1')), rt.submit(textRequest('1'))]);
    const closing = rt.close({ graceMs: 5000 });
    await assert.rejects(rt.submit(textRequest('1')), isMar('SERVICE_UNAVAILABLE', 503));
    assert.equal((await inFlight).body.toString(), 'OK');
    for (const q of await queued) {
      assert.equal(q.status, 'rejected');
      isMar('SERVICE_UNAVAILABLE', 503, NO_WORKER)(q.reason);
    }
    await closing;
    assert.deepEqual(rt.workers(), []);
  });

  it('close({drain: true}) serves the queued requests first', async (t) => {
    const rt = await runtimeFor(t, 'slow');
    const all = [rt.submit(textRequest('100')), rt.submit(textRequest('1')), rt.submit(textRequest('1'))];
    await rt.close({ graceMs: 5000, drain: true });
    for (const r of await Promise.all(all)) assert.equal(r.body.toString(), 'OK');
  });

  it('close({drain: true}) ends as soon as the only job left waiting is cancelled, not at the grace', async (t) => {
    // batch_size 8 with a long delay: the one job sits in a forming batch, so no batch completion would re-check
    const rt = await runtimeFor(t, 'slow', { batchSize: 8, maxBatchDelayMs: 60_000 });
    const waiting = rt.submitCancellable(textRequest('1'));
    const t0 = performance.now();
    const closed = rt.close({ graceMs: 60_000, drain: true });
    waiting.cancel();
    await assert.rejects(waiting.promise, isMar('REQUEST_CANCELLED'));
    await closed;
    assert.ok(performance.now() - t0 < 10_000, 'close waited for the grace');
  });

  it('close() kills a batch that outlives the grace period; its callers get 500 "Worker died."', async (t) => {
    const rt = await runtimeFor(t, 'hang');
    const stuck = assert.rejects(rt.submit(textRequest('forever')), isMar('WORKER_DIED', 500, 'Worker died.'));
    const t0 = performance.now();
    await rt.close({ graceMs: 200 });
    await stuck;
    assert.ok(performance.now() - t0 < 5000);
  });

  it('close() cancels a start stuck in LOAD after the grace: the worker process is killed, not orphaned', async (t) => {
    const dir = await tempDir(t);
    await writeFile(
      join(dir, 'stuck.py'),
      'import os, time\n\ndef handle(data, context):\n    if data is None:\n        print("stuck-init pid=%d" % os.getpid(), flush=True)\n        time.sleep(600)\n    return data\n',
    );
    const model = await openModel(dir, { modelName: 'stuck', handler: 'stuck:handle' });
    t.after(() => model.release());
    let seenPid!: (pid: number) => void;
    const pid = new Promise<number>((resolve) => (seenPid = resolve));
    const rt = new ModelRuntime({
      model,
      onEvent: () => {},
      log: (l) => {
        const m = /stuck-init pid=(\d+)/.exec(l.line);
        if (m) seenPid(Number(m[1]));
      },
    });
    const started = rt.start({ synchronous: true });
    const workerPid = await pid;
    const t0 = performance.now();
    await rt.close({ graceMs: 200 });
    assert.ok(performance.now() - t0 < 5000, 'close() does not wait for the 120 s load timeout');
    assert.throws(() => process.kill(workerPid, 0), { code: 'ESRCH' }, 'the worker stuck in LOAD is gone when close() returns');
    assert.equal((await started).failed, 1);
  });

  it('close() under load: every one of many concurrent requests gets an answer', async (t) => {
    const rt = await runtimeFor(t, 'slow', { minWorkers: 2, batchSize: 4, maxBatchDelayMs: 20, jobQueueSize: 200 });
    const all = Array.from({ length: 120 }, (_, i) => rt.submit(textRequest(i % 10 === 0 ? '30' : '2')));
    const settledAll = Promise.allSettled(all);
    // Close once the first answer is in, with batches in flight and many still queued.
    await Promise.race(all);
    await rt.close({ graceMs: 5000 });
    const settled = await settledAll;
    let ok = 0;
    for (const s of settled) {
      if (s.status === 'fulfilled') ok++;
      else isMar('SERVICE_UNAVAILABLE', 503, NO_WORKER)(s.reason);
    }
    assert.ok(ok >= 1 && ok < 120, `${ok} served, the rest answered 503`);
  });

  it('workers() describes real processes; health() counts them', async (t) => {
    const rt = await runtimeFor(t, 'noop', { minWorkers: 2 });
    const ws = rt.workers();
    assert.equal(ws.length, 2);
    for (const w of ws) {
      assert.match(w.id, /^\d+-[0-9a-f]{8}$/);
      assert.equal(w.status, 'READY');
      assert.ok(w.pid && w.pid > 0);
      assert.ok(w.startTime instanceof Date);
      assert.ok(w.memoryUsage > 0, 'RSS read from /proc');
      assert.equal(w.gpu, false);
    }
    assert.notEqual(ws[0]!.pid, ws[1]!.pid);
    assert.deepEqual(rt.health(), { running: 2, configured: 2 });
  });

  it('rejects bad options with a clear message', async () => {
    const model = await openModel(HANDLERS, { modelName: 'm', handler: 'noop' });
    try {
      assert.throws(() => new ModelRuntime({ model, batchSize: 0 }), /batch size must be an integer >= 1/);
      assert.throws(() => new ModelRuntime({ model, minWorkers: 2, maxWorkers: 1 }), /max workers/);
      assert.throws(() => new ModelRuntime({ model, jobQueueSize: 0 }), /job queue size/);
    } finally {
      await model.release();
    }
  });
});
