/**
 * Connections under abuse and answers sent before a request was read whole (connection-guard.ts): what Node's and
 * Python's clients (and curl) see. Timeouts are 1-2 s here so a cut-off is observed in a few seconds.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import { run } from '../helpers/util.js';
import { http, registerPy, startServer } from './server-helpers.js';

const MiB = 1024 * 1024;
const HAS_CURL = spawnSync('curl', ['--version']).status === 0;

/** A body of `size` bytes streamed in 1 MiB chunks (never held whole). */
function zeros(size: number): Readable {
  let left = size;
  const chunk = Buffer.alloc(MiB);
  return new Readable({
    read() {
      if (left <= 0) return void this.push(null);
      const n = Math.min(left, chunk.length);
      left -= n;
      this.push(n === chunk.length ? chunk : chunk.subarray(0, n));
    },
  });
}

/** POSTs `size` bytes with Node's client; resolves with the answer as soon as it arrives (the upload may still fail later). */
function nodePost(base: string, path: string, size: number): Promise<{ status: number; text: string }> {
  const url = new URL(path, base);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: url.hostname, port: url.port, path, method: 'POST', agent: false, headers: { 'content-length': size } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      },
    );
    // the server closes once it has drained what it will: a write error after the answer is expected
    req.on('error', reject);
    zeros(size).pipe(req);
  });
}

/** POSTs `size` bytes with Python's http.client, the way urllib3 does it: an upload cut short is not the end, read the answer. */
const PY_CLIENT = String.raw`
import http.client, json, sys
host, port, path, size = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
chunk = b"\0" * (1 << 20)
def body():
    left = size
    while left > 0:
        n = min(left, len(chunk))
        left -= n
        yield chunk[:n]
conn = http.client.HTTPConnection(host, port, timeout=30)
upload = "complete"
try:
    conn.request("POST", path, body=body(), headers={"Content-Length": str(size)})
except (BrokenPipeError, ConnectionResetError) as e:
    upload = type(e).__name__
r = conn.getresponse()
print(json.dumps({"upload": upload, "status": r.status, "body": json.loads(r.read())}))
`;

async function pythonPost(base: string, path: string, size: number): Promise<{ upload: string; status: number; body: unknown }> {
  const url = new URL(base);
  const r = await run('python3', ['-c', PY_CLIENT, url.hostname, url.port, path, String(size)], { timeoutMs: 60_000 });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

const tooLarge = {
  code: 413,
  type: 'RequestEntityTooLargeException',
  message: 'The request body is larger than max_request_size (6553500 bytes); send a smaller one or raise max_request_size.',
};

// each test has its own server: they run side by side, most of their time is spent waiting for a deadline
describe('connections', { concurrency: true }, () => {
  test('over max_request_size: Node and Python clients sending 7 MiB and 100 MiB read the 413 JSON', async (t) => {
    const s = await startServer(t);
    assert.equal((await registerPy(s, 'noop', 'noop:handle')).status, 200);
    for (const size of [7 * MiB, 100 * MiB]) {
      const n = await nodePost(s.inference, '/predictions/noop', size);
      assert.deepEqual([n.status, JSON.parse(n.text)], [413, tooLarge], `node, ${size} bytes`);
      const p = await pythonPost(s.inference, '/predictions/noop', size);
      assert.deepEqual([p.status, p.body], [413, tooLarge], `python, ${size} bytes`);
      // within the drain bound (2 x max_request_size) the whole body is read: a plain http.client call just works
      if (size === 7 * MiB) assert.equal(p.upload, 'complete');
    }
    // an error answered after the body was read (no such model) reaches Python's client too
    const nf = await pythonPost(s.inference, '/predictions/nosuch', 5 * MiB);
    assert.deepEqual([nf.upload, nf.status], ['complete', 404]);
    assert.equal((await http(s.inference, 'POST', '/predictions/noop', 'x')).text, 'OK');
  });

  /** Opens a raw connection and returns everything the server sends until it closes, and when it closed. */
  function rawConnection(base: string): { socket: Socket; closed: Promise<{ text: string; ms: number }> } {
    const url = new URL(base);
    const socket = connect(Number(url.port), url.hostname);
    const t0 = performance.now();
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    const closed = new Promise<{ text: string; ms: number }>((resolve) => {
      socket.on('error', () => undefined);
      socket.on('close', () => resolve({ text: Buffer.concat(chunks).toString('utf8'), ms: performance.now() - t0 }));
    });
    return { socket, closed };
  }

  /** Writes `text` one byte every `everyMs` until the socket closes. */
  function trickle(socket: Socket, text: string, everyMs: number): void {
    let i = 0;
    const timer = setInterval(() => {
      if (socket.destroyed || i >= text.length) return void clearInterval(timer);
      socket.write(text[i++]!);
    }, everyMs);
    socket.once('close', () => clearInterval(timer));
  }

  function bodyOf(raw: string): any {
    return JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4));
  }

  test('slow clients: headers or a body a byte at a time are cut off with 408 within the configured time, holding no worker', async (t) => {
    const s = await startServer(t, { props: { request_header_timeout: 1, request_body_timeout: 2, job_queue_size: 1 } });
    assert.equal((await registerPy(s, 'noop', 'noop:handle')).status, 200);

    const body = rawConnection(s.inference);
    body.socket.write('POST /predictions/noop HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n');
    trickle(body.socket, 'x'.repeat(100), 250);
    const headers = rawConnection(s.inference);
    trickle(headers.socket, 'POST /predictions/noop HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx', 250);
    const idle = rawConnection(s.inference);
    // keep-alive: a first request answered, then the next one's headers trickle in
    const second = rawConnection(s.inference);
    second.socket.write('GET /ping HTTP/1.1\r\nHost: x\r\n\r\n');
    second.socket.once('data', () => trickle(second.socket, 'GET /ping HTTP/1.1\r\nHost: x\r\n\r\n', 250));

    // the stalled clients hold neither the model's one worker nor its one queue slot
    for (let i = 0; i < 3; i++) assert.equal((await http(s.inference, 'POST', '/predictions/noop', 'x')).text, 'OK');

    const b = await body.closed;
    assert.match(b.text, /^HTTP\/1\.1 408 Request Timeout\r\n/);
    assert.deepEqual(bodyOf(b.text), {
      code: 408,
      type: 'RequestTimeoutException',
      message: 'The request was not received within 2 s; send it faster or raise request_body_timeout.',
    });
    assert.ok(b.ms >= 1900 && b.ms < 4000, `cut off after ${Math.round(b.ms)} ms`);
    const h = await headers.closed;
    assert.equal(
      bodyOf(h.text).message,
      'The request headers were not received within 1 s; send them faster or raise request_header_timeout.',
    );
    assert.ok(h.ms >= 900 && h.ms < 3000, `cut off after ${Math.round(h.ms)} ms`);
    const k = await second.closed;
    assert.match(k.text, /^HTTP\/1\.1 200 OK\r\n[\s\S]*HTTP\/1\.1 408 Request Timeout\r\n/);
    assert.equal(
      bodyOf(k.text.slice(k.text.lastIndexOf('HTTP/1.1 408'))).message,
      'The request headers were not received within 1 s; send them faster or raise request_header_timeout.',
    );
    // a connection that never sends a byte is closed after the header timeout, without an answer
    const i = await idle.closed;
    assert.equal(i.text, '');
    assert.ok(i.ms >= 900 && i.ms < 3000, `idle connection closed after ${Math.round(i.ms)} ms`);
    assert.deepEqual((await http(s.inference, 'GET', '/ping')).json(), { status: 'Healthy' });
  });

  test('curl --limit-rate 1 on a body is cut off with 408', { skip: HAS_CURL ? false : 'install curl to run this test' }, async (t) => {
    const s = await startServer(t, { props: { request_header_timeout: 1, request_body_timeout: 2 } });
    assert.equal((await registerPy(s, 'noop', 'noop:handle')).status, 200);
    const r = await run(
      'curl',
      ['-sS', '--limit-rate', '1', '-H', 'Expect:', '--data-binary', 'x'.repeat(64), `${s.inference}/predictions/noop`],
      {
        timeoutMs: 30_000,
      },
    );
    assert.match(r.stdout, /"code": 408,\n {2}"type": "RequestTimeoutException"/);
  });

  test('header size over max_header_size is 431 JSON; a request Node cannot parse is 400 "Invalid HTTP message."', async (t) => {
    const s = await startServer(t, { props: { max_header_size: 4096 } });
    const big = rawConnection(s.inference);
    big.socket.write(`GET /ping HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(8192)}\r\n\r\n`);
    const b = await big.closed;
    assert.match(b.text, /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
    assert.deepEqual(bodyOf(b.text), {
      code: 431,
      type: 'BadRequestException',
      message: 'The request line and headers are larger than 4096 bytes; send fewer or shorter headers, or raise max_header_size.',
    });
    assert.equal((await http(s.inference, 'GET', '/ping', undefined, { 'x-ok': 'a'.repeat(2000) })).status, 200);
    const bad = rawConnection(s.inference);
    bad.socket.write('FOO / HTTP/1.1\r\nHost: x\r\n\r\n');
    const r = await bad.closed;
    assert.match(r.text, /^HTTP\/1\.1 400 Bad Request\r\n/);
    assert.deepEqual(bodyOf(r.text), { code: 400, type: 'BadRequestException', message: 'Invalid HTTP message.' });
  });

  test('max_connections: one connection more is closed at once; keep_alive_timeout closes idle keep-alive connections', async (t) => {
    const s = await startServer(t, { props: { max_connections: 2, keep_alive_timeout: 1, request_header_timeout: 30 } });
    const open = [rawConnection(s.inference), rawConnection(s.inference)];
    await Promise.all(open.map((c) => new Promise((r) => c.socket.once('connect', r))));
    // the server has accepted both before the third arrives: a ping on one of them proves it
    open[0]!.socket.write('GET /ping HTTP/1.1\r\nHost: x\r\n\r\n');
    await new Promise((r) => open[0]!.socket.once('data', r));
    const extra = rawConnection(s.inference);
    extra.socket.write('GET /ping HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.equal((await extra.closed).text, '', 'over the cap: closed without an answer');
    // the keep-alive connection that answered the ping is closed after keep_alive_timeout (1 s)
    const ka = await open[0]!.closed;
    assert.ok(ka.ms < 5000);
    assert.equal((await http(s.inference, 'GET', '/ping')).status, 200, 'a slot is free again');
    open[1]!.socket.destroy();
  });
});
