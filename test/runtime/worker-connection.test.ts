import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { MarError } from '../../src/errors.js';
import { encodeReply, type WorkerReply } from '../../src/runtime/protocol.js';
import { WorkerConnection } from '../../src/runtime/worker-connection.js';
import { tempDir } from '../helpers/util.js';

const reply = (id: string): WorkerReply => ({
  code: 200,
  message: 'Prediction success',
  predictions: [{ requestId: id, contentType: null, statusCode: 200, reasonPhrase: '', headers: [], body: Buffer.from('OK') }],
});

/** A connection to a fake worker on a unix socket; `peer` resolves with the fake worker's end. */
async function connected(t: TestContext): Promise<{ conn: WorkerConnection; peer: Socket; events: string[] }> {
  const dir = await tempDir(t);
  const path = join(dir, 'w.sock');
  const events: string[] = [];
  const server = createServer();
  const peer = new Promise<Socket>((resolve) => server.once('connection', resolve));
  await new Promise<void>((resolve) => server.listen(path, resolve));
  const conn = new WorkerConnection({
    workerId: '1',
    modelName: 'm',
    maxFrameBytes: 1 << 20,
    onBroken: () => events.push('broken'),
    onClose: () => events.push('closed'),
  });
  const started = conn.awaitStart(5_000, () => new MarError('WORKER_START_FAILED', 'no start'));
  conn.connect({ type: 'unix', path });
  await started;
  const p = await peer;
  t.after(() => {
    conn.destroy();
    p.destroy();
    server.close();
  });
  return { conn, peer: p, events };
}

test('send(): the reply reaches the callback in the socket read that completes it, without a promise', async (t) => {
  const { conn, peer, events } = await connected(t);
  const got = new Promise<WorkerReply>((resolve, reject) => conn.send(Buffer.from('I'), 10_000, resolve, reject));
  peer.once('data', () => peer.write(encodeReply(reply('a'))));
  const r = await got;
  assert.equal(r.predictions[0]!.requestId, 'a');
  assert.equal(conn.inFlight, null);
  assert.deepEqual(events, []);
});

test('send(): two replies in one read end the worker before the request in flight gets the first', async (t) => {
  const { conn, peer, events } = await connected(t);
  const got = new Promise<WorkerReply>((resolve, reject) =>
    conn.send(
      Buffer.from('I'),
      10_000,
      (r) => {
        // a callback may send the next batch from here: the worker must already count as broken
        events.push('reply');
        resolve(r);
      },
      reject,
    ),
  );
  peer.once('data', () => peer.write(Buffer.concat([encodeReply(reply('a')), encodeReply(reply('b'))])));
  const r = await got;
  assert.equal(r.predictions[0]!.requestId, 'a');
  assert.deepEqual(events, ['broken', 'reply']);
});

test('send(): a failure reaches the error callback a microtask later, as a rejection would', async (t) => {
  const { conn } = await connected(t);
  const seen: { err: unknown } = { err: null };
  conn.send(
    Buffer.from('I'),
    10_000,
    () => assert.fail('no reply was sent'),
    (e) => {
      seen.err = e;
    },
  );
  conn.fail(new MarError('WORKER_DIED', 'Worker died.'));
  const synchronously = seen.err;
  await Promise.resolve();
  assert.equal(synchronously, null, 'not synchronously');
  assert.ok(seen.err instanceof MarError && seen.err.code === 'WORKER_DIED');
});
