import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import type { HttpResult, RunningServer } from './server-helpers.js';
import { http, register, registerPy, startServer } from './server-helpers.js';

/**
 * A handler that announces every batch on stdout (the server logs worker lines), so the test can wait for
 * "the batch is in the worker" instead of sleeping. Body "hang" never answers; body "gate" answers once the
 * file `release` exists beside the handler (the test creates it when it is ready); other bodies are echoed back.
 */
const SIGNAL_HANDLER = `
import os, time

RELEASE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "release")

def handle(data, context):
    if data is None:
        return None
    bodies = []
    for r in data:
        b = r.get("body")
        bodies.append(bytes(b).decode() if isinstance(b, (bytes, bytearray)) else str(b))
    print("BATCH " + context.model_name + " " + ",".join(bodies), flush=True)
    if "hang" in bodies:
        while True:
            time.sleep(3600)
    if "gate" in bodies:
        while not os.path.exists(RELEASE):
            time.sleep(0.01)
    return bodies
`;

/** A server of its own (job_queue_size 2) with the announcing handler in store/sig. */
async function signalServer(t: TestContext): Promise<RunningServer> {
  const s = await startServer(t, { props: { job_queue_size: 2 } });
  await mkdir(join(s.store, 'sig'), { recursive: true });
  await writeFile(join(s.store, 'sig', 'announce.py'), SIGNAL_HANDLER);
  return s;
}

const post = (s: RunningServer, model: string, body: string): Promise<HttpResult> =>
  http(s.inference, 'POST', `/predictions/${model}`, body, { 'content-type': 'text/plain' });

// Each subtest starts its own in-process server: none depends on what another registered or killed.
test('workers: batching, queue full, worker death, response timeout, Node handlers', async (t) => {
  await t.test('concurrent requests reach the handler as one batch; a lone request waits max_batch_delay at most', async (t) => {
    const s = await signalServer(t);
    const r = await registerPy(s, 'batch', 'batch_size:handle', { batch_size: 2, max_batch_delay: 5000 });
    assert.equal(r.status, 200, r.text);
    const results = await Promise.all([post(s, 'batch', 'a'), post(s, 'batch', 'b')]);
    for (const res of results) assert.deepEqual(JSON.parse(res.text), { batch_length: 2, batch_size: 2 });
    await registerPy(s, 'batch_short', 'batch_size:handle', { batch_size: 8, max_batch_delay: 50 });
    const t0 = performance.now();
    const lone = await post(s, 'batch_short', 'a');
    assert.deepEqual(JSON.parse(lone.text), { batch_length: 1, batch_size: 8 });
    assert.ok(performance.now() - t0 < 2000);
  });

  await t.test('queue full -> 503; worker killed mid-batch -> 500 "Worker died.", replacement serves queued jobs', async (t) => {
    const s = await signalServer(t);
    const r = await register(s, { url: 'sig', model_name: 'sig', handler: 'announce:handle', initial_workers: 1 });
    assert.equal(r.status, 200, r.text);
    const pid = (await http(s.management, 'GET', '/models/sig')).json().workers[0].pid as number;
    const inFlight = post(s, 'sig', 'hang');
    await s.waitLine(/BATCH sig hang/);
    // job_queue_size=2: two of three wait, one is refused at once
    const queued = [post(s, 'sig', 'q1'), post(s, 'sig', 'q2'), post(s, 'sig', 'q3')];
    const first = await Promise.race(queued);
    assert.equal(first.status, 503);
    assert.deepEqual(first.json(), {
      code: 503,
      type: 'ServiceUnavailableException',
      message: 'No worker is available to serve request for model: sig. Consider increasing job queue size.',
    });
    process.kill(pid, 'SIGTERM'); // SIGKILL would be exit 137: 507 like MMS
    const died = await inFlight;
    assert.equal(died.status, 500);
    assert.deepEqual(died.json(), { code: 500, type: 'InternalServerException', message: 'Worker died.' });
    const all = await Promise.all(queued);
    const ok = all
      .filter((x) => x.status === 200)
      .map((x) => x.text)
      .sort();
    assert.equal(ok.length, 2);
    assert.ok(ok.every((b) => /^q[123]$/.test(b)));
    const d = (await http(s.management, 'GET', '/models/sig')).json();
    assert.equal(d.workers.length, 1);
    assert.notEqual(d.workers[0].pid, pid, 'a replacement worker runs');
  });

  await t.test('a worker that misses response_timeout is killed: 500 "Worker died.", then a replacement answers', async (t) => {
    const s = await signalServer(t);
    const body = JSON.stringify({
      url: 'sig',
      model_name: 'slowpoke',
      handler: 'announce:handle',
      initial_workers: 1,
      response_timeout: 1,
    });
    assert.equal((await http(s.management, 'POST', '/models', body, { 'content-type': 'application/json' })).status, 200);
    const r = await post(s, 'slowpoke', 'hang');
    assert.equal(r.status, 500);
    assert.equal(r.json().message, 'Worker died.');
    const ok = await post(s, 'slowpoke', 'fine');
    assert.deepEqual([ok.status, ok.text], [200, 'fine']);
  });

  await t.test('ping reports Partial Healthy while some configured workers are not running', async (t) => {
    const s = await signalServer(t);
    // a model with its worker up: Healthy
    assert.equal((await registerPy(s, 'noop', 'noop:handle')).status, 200);
    assert.deepEqual((await http(s.inference, 'GET', '/ping')).json(), { status: 'Healthy' });
    // a model whose only worker keeps failing to load: 1 of 2 running
    const broken = await registerPy(s, 'broken', 'load_fail:handle', { synchronous: false });
    assert.equal(broken.status, 202);
    const status = (await http(s.inference, 'GET', '/ping')).json().status;
    assert.equal(status, 'Partial Healthy');
    await http(s.management, 'DELETE', '/models/broken');
  });

  await t.test('unregister lets the in-flight batch finish; the model is gone at once', async (t) => {
    const s = await signalServer(t);
    const r = await register(s, { url: 'sig', model_name: 'leaving', handler: 'announce:handle', initial_workers: 1 });
    assert.equal(r.status, 200, r.text);
    const inFlight = post(s, 'leaving', 'gate');
    await s.waitLine(/BATCH leaving gate/);
    const del = http(s.management, 'DELETE', '/models/leaving');
    await s.waitLine(/Unregistering model leaving/);
    // the batch is still held in the handler: the name is gone already
    assert.equal((await post(s, 'leaving', 'x')).status, 404);
    await writeFile(join(s.store, 'sig', 'release'), '');
    const done = await inFlight;
    assert.deepEqual([done.status, done.text], [200, 'gate']);
    assert.deepEqual((await del).json(), { status: 'Model "leaving" unregistered' });
    assert.equal((await post(s, 'leaving', 'x')).status, 404);
  });

  await t.test('Node handlers are served too (runtime=node)', async (t) => {
    const s = await startServer(t);
    const r = await register(s, { url: 'node', model_name: 'jsnoop', handler: 'noop:handle', runtime: 'node', initial_workers: 1 });
    assert.equal(r.status, 200, r.text);
    assert.equal((await post(s, 'jsnoop', 'x')).text, 'OK');
    assert.equal((await http(s.management, 'GET', '/models/jsnoop')).json().runtime, 'node');
  });
});
