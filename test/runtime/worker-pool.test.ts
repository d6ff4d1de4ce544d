import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { MarError } from '../../src/errors.js';
import { Job } from '../../src/runtime/job-queue.js';
import { openModel } from '../../src/runtime/model.js';
import { ModelRuntime, type ModelRuntimeOptions, type PoolEvent } from '../../src/runtime/model-runtime.js';
import type { InferenceRequest, PredictionResult } from '../../src/runtime/protocol.js';
import { completeBatch } from '../../src/runtime/worker-reply.js';
import { FIXTURES, tempDir } from '../helpers/util.js';

const HANDLERS = join(FIXTURES, 'handlers', 'python');
let seq = 0;

function textRequest(body: string): InferenceRequest {
  return {
    requestId: `req-${++seq}`,
    headers: [],
    params: [{ name: 'body', contentType: 'text/plain', value: Buffer.from(body) }],
  };
}

/** A handler that crashes the process on the body "crash", sleeps on "sleep:<s>", else echoes the body. */
const CRASHY = `
import os, time

def handle(data, context):
    if data is None:
        return None
    out = []
    for r in data:
        body = r.get("body")
        if body == "crash":
            os._exit(3)
        if isinstance(body, str) and body.startswith("sleep:"):
            time.sleep(float(body[6:]))
        out.append(body if isinstance(body, str) else "OK")
    return out
`;

interface Harness {
  rt: ModelRuntime;
  events: EventEmitter;
  log: PoolEvent[];
}

async function harness(
  t: TestContext,
  dir: string,
  handler: string,
  options: Partial<Omit<ModelRuntimeOptions, 'model'>> = {},
  startSynchronously = true,
): Promise<Harness> {
  const model = await openModel(dir, { modelName: 'm', handler });
  const events = new EventEmitter();
  const log: PoolEvent[] = [];
  const rt = new ModelRuntime({
    model,
    log: () => {},
    backoffMs: [50],
    onEvent: (e) => {
      log.push(e);
      events.emit(e.type, e);
    },
    ...options,
  });
  t.after(async () => {
    await rt.close({ graceMs: 1000 });
    await model.release();
  });
  if (startSynchronously) {
    const r = await rt.start();
    assert.equal(r.failed, 0, r.error?.message);
  }
  return { rt, events, log };
}

async function crashyDir(t: TestContext): Promise<string> {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'crashy.py'), CRASHY);
  return dir;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const diedWith = (status: number | number[]) => (e: unknown) => {
  assert.ok(e instanceof MarError, String(e));
  // killed from outside (the OOM killer) is its own code, with its own status
  assert.equal(e.code, e.httpStatus === 507 ? 'WORKER_OUT_OF_MEMORY' : 'WORKER_DIED');
  assert.equal(e.message, 'Worker died.');
  assert.ok(([] as number[]).concat(status).includes(e.httpStatus), `status ${e.httpStatus}`);
  return true;
};

describe('completeBatch', () => {
  const make = (id: string) => {
    let job!: Job;
    const p = new Promise<PredictionResult>((res, rej) => (job = new Job({ requestId: id, headers: [], params: [] }, res, rej)));
    return { job, p };
  };
  const pred = (id: string, body: string): PredictionResult => ({
    requestId: id,
    contentType: null,
    statusCode: 200,
    reasonPhrase: '',
    headers: [],
    body: Buffer.from(body),
  });

  it('matches predictions by requestId, whatever their order; a missing one gets 503', async () => {
    const [a, b, c] = [make('a'), make('b'), make('c')];
    completeBatch([a.job, b.job, c.job], { code: 200, message: 'Prediction success', predictions: [pred('b', 'B'), pred('a', 'A')] });
    assert.equal((await a.p).body.toString(), 'A');
    assert.equal((await b.p).body.toString(), 'B');
    await assert.rejects(
      c.p,
      (e: unknown) => e instanceof MarError && e.httpStatus === 503 && e.message === 'Invalid model predict output',
    );
  });

  it('a non-200 reply fails every job with its code and message', async () => {
    const [a, b] = [make('a'), make('b')];
    completeBatch([a.job, b.job], { code: 507, message: 'Out of resources', predictions: [] });
    for (const j of [a, b]) {
      await assert.rejects(
        j.p,
        (e: unknown) => e instanceof MarError && e.code === 'PREDICTION_FAILED' && e.httpStatus === 507 && e.message === 'Out of resources',
      );
    }
  });
});

describe('WorkerPool supervision with real Python workers', () => {
  it('a worker that dies mid-batch: its batch gets 500 "Worker died.", a replacement starts and serves the queued jobs', async (t) => {
    const dir = await crashyDir(t);
    const { rt, events, log } = await harness(t, dir, 'crashy');
    const oldPid = rt.workers()[0]!.pid!;
    const crashed = rt.submit(textRequest('crash'));
    const queued = [rt.submit(textRequest('a')), rt.submit(textRequest('b'))];
    const restarted = once(events, 'started');
    await assert.rejects(crashed, diedWith(500));
    const [results] = await Promise.all([Promise.all(queued), restarted]);
    assert.deepEqual(
      results.map((r) => r.body.toString()),
      ['a', 'b'],
      'queued jobs kept and served in order',
    );
    const w = rt.workers()[0]!;
    assert.notEqual(w.pid, oldPid, 'a new process');
    assert.equal(isAlive(oldPid), false);
    const died = log.find((e) => e.type === 'died');
    assert.ok(died && died.type === 'died' && died.inFlight === 1 && died.retryInMs === 50);
  });

  it('a worker that loads but dies on every batch backs off step by step; a reply starts the backoff over', async (t) => {
    const dir = await crashyDir(t);
    const { rt, events, log } = await harness(t, dir, 'crashy', { backoffMs: [50, 150, 300] });
    const delays = (): Array<number | null> => log.flatMap((e) => (e.type === 'died' ? [e.retryInMs] : []));
    for (let i = 0; i < 3; i++) {
      const restarted = once(events, 'started');
      await assert.rejects(rt.submit(textRequest('crash')), diedWith(500));
      await restarted;
    }
    assert.deepEqual(delays(), [50, 150, 300], 'a successful LOAD alone does not reset the backoff');
    assert.equal((await rt.submit(textRequest('fine'))).body.toString(), 'fine');
    const restarted = once(events, 'started');
    await assert.rejects(rt.submit(textRequest('crash')), diedWith(500));
    await restarted;
    assert.deepEqual(delays(), [50, 150, 300, 50], 'after a reply the next death waits the first step again');
  });

  it('close() stops every worker even when one of them is waiting to restart (none is left running)', async (t) => {
    const { rt, events } = await harness(t, HANDLERS, 'noop', { minWorkers: 2, backoffMs: [60_000] });
    const [first, second] = rt.workers().map((w) => w.pid!);
    t.after(() => void (isAlive(second!) && process.kill(second!, 'SIGKILL'))); // a regression fails, not hangs
    const died = once(events, 'died');
    process.kill(first!, 'SIGKILL');
    await died;
    assert.equal(rt.workers()[0]!.status, 'RESTARTING', 'the first slot waits for its restart');
    await rt.close({ graceMs: 1000 });
    assert.equal(isAlive(second!), false, 'the other worker was stopped too');
    assert.deepEqual(rt.workers(), []);
  });

  it('kill -9 of a busy worker: its callers get "Worker died." and the next request is served', async (t) => {
    const dir = await crashyDir(t);
    const { rt, events } = await harness(t, dir, 'crashy');
    const pid = rt.workers()[0]!.pid!;
    const inFlight = assert.rejects(rt.submit(textRequest('sleep:30')), diedWith([500, 507]));
    process.kill(pid, 'SIGKILL');
    await inFlight;
    await once(events, 'started');
    assert.equal((await rt.submit(textRequest('after'))).body.toString(), 'after');
  });

  it('a worker that misses the response timeout is killed and replaced', async (t) => {
    const { rt, events } = await harness(t, HANDLERS, 'hang', { responseTimeoutMs: 300 });
    const pid = rt.workers()[0]!.pid!;
    const t0 = performance.now();
    await assert.rejects(rt.submit(textRequest('forever')), diedWith(500));
    assert.ok(performance.now() - t0 < 3000, 'answered soon after the timeout');
    await once(events, 'started');
    assert.equal((await rt.submit(textRequest('ok'))).body.toString(), 'OK');
    assert.notEqual(rt.workers()[0]!.pid, pid);
  });

  it('a worker that dies while idle is replaced', async (t) => {
    const { rt, events } = await harness(t, HANDLERS, 'noop');
    const pid = rt.workers()[0]!.pid!;
    const died = once(events, 'died');
    process.kill(pid, 'SIGKILL');
    await died;
    assert.equal(rt.health().running, 0);
    assert.equal(rt.health().configured, 1);
    await once(events, 'started');
    assert.equal((await rt.submit(textRequest('x'))).body.toString(), 'OK');
  });

  it('a load failure is reported by a synchronous start and retried with backoff; close() answers queued jobs', async (t) => {
    const { rt, events } = await harness(t, HANDLERS, 'load_fail', { backoffMs: [100, 200] }, false);
    const r = await rt.start({ synchronous: true });
    assert.equal(r.started, 0);
    assert.equal(r.failed, 1);
    assert.equal(r.running, 0);
    assert.equal(r.error?.code, 'WORKER_LOAD_FAILED');
    assert.match(r.error!.message, /Failed to load model m/);
    assert.equal(r.error!.httpStatus, 500);
    // Still configured: it keeps retrying while the model stays registered.
    const retry = (await once(events, 'start-failed')) as [PoolEvent];
    assert.ok(retry[0].type === 'start-failed' && retry[0].retryInMs === 200, 'second retry uses the next backoff step');
    const w = rt.workers()[0]!;
    assert.ok(w.status === 'RESTARTING' || w.status === 'STARTING');
    assert.match(w.lastError ?? '', /Failed to load model/);
    const waiting = assert.rejects(rt.submit(textRequest('x')), (e: unknown) => e instanceof MarError && e.httpStatus === 503);
    await rt.close();
    await waiting;
    assert.deepEqual(rt.workers(), []);
  });

  it('close() does not wait past its grace for a worker stuck in LOAD', async (t) => {
    const dir = await tempDir(t);
    await writeFile(
      join(dir, 'slow_load.py'),
      'import time\n\ndef handle(data, context):\n    if data is None:\n        time.sleep(30)\n    return ["OK"] * len(data or [])\n',
    );
    // LOAD would end after 30 s (the handler's sleep) or the 60 s load timeout: close must not wait for either.
    const { rt } = await harness(t, dir, 'slow_load', { loadTimeoutMs: 60_000 }, false);
    await rt.start({ synchronous: false });
    assert.equal(rt.workers()[0]!.status, 'STARTING');
    const t0 = performance.now();
    await rt.close({ graceMs: 200 });
    assert.ok(performance.now() - t0 < 15_000, `close returned after ${(performance.now() - t0).toFixed(0)} ms`);
    assert.deepEqual(rt.workers(), []);
  });

  it('an asynchronous start returns at once and the workers come up', async (t) => {
    const { rt, events } = await harness(t, HANDLERS, 'noop', { minWorkers: 2 }, false);
    const started = once(events, 'started');
    const r = await rt.start({ synchronous: false });
    assert.equal(r.complete, false);
    assert.equal(r.configured, 2);
    await started;
    // A request submitted while workers start waits for one rather than failing.
    assert.equal((await rt.submit(textRequest('x'))).body.toString(), 'OK');
  });

  it('scale up and down: new workers serve, retired ones finish their batch and exit', async (t) => {
    const dir = await crashyDir(t);
    const { rt } = await harness(t, dir, 'crashy');
    const up = await rt.scale(3, 3);
    assert.deepEqual([up.added, up.started, up.failed, up.running, up.configured], [2, 2, 0, 3, 3]);
    assert.equal(rt.maxWorkers, 3);
    const pids = rt.workers().map((w) => w.pid!);
    assert.equal(new Set(pids).size, 3);

    // Keep every worker busy, then scale to 1: in-flight batches complete, two processes stop.
    const busy = [1, 2, 3].map((i) => rt.submit(textRequest(`sleep:0.3`)).then((r) => r.body.toString() + i));
    const down = await rt.scale(1, 1);
    assert.deepEqual(await Promise.all(busy), ['sleep:0.31', 'sleep:0.32', 'sleep:0.33'], 'no batch lost on scale-down');
    assert.deepEqual([down.removed, down.running, down.configured], [2, 1, 1]);
    const left = rt.workers();
    assert.equal(left.length, 1);
    assert.equal(pids.filter((p) => isAlive(p)).length, 1, 'retired processes exited');
    assert.equal(left[0]!.pid, pids[0], 'the first worker (index < max) is kept');

    // Scale to zero: queued jobs are answered 503, later submits too.
    const inFlight = rt.submit(textRequest('sleep:0.2'));
    const queued = assert.rejects(rt.submit(textRequest('q')), (e: unknown) => e instanceof MarError && e.httpStatus === 503);
    await rt.scale(0, 0);
    await queued;
    assert.equal((await inFlight).body.toString(), 'sleep:0.2');
    assert.deepEqual(rt.health(), { running: 0, configured: 0 });
    await assert.rejects(rt.submit(textRequest('x')), (e: unknown) => e instanceof MarError && e.httpStatus === 503);
  });
});
