import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { connect } from 'node:net';
import { test } from 'node:test';
import { http, registerPy, startServer } from './server-helpers.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Sends raw bytes and resolves with the raw response text (until the server closes the connection). */
function rawRequest(base: string, data: string | Buffer): Promise<string> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const sock = connect(Number(url.port), url.hostname, () => sock.write(data));
    const chunks: Buffer[] = [];
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    sock.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' || err.code === 'EPIPE' ? undefined : reject(err)));
  });
}

// One server with the fixture models registered before the subtests: they only send requests to it, so
// none depends on another's state; the ping-on-an-empty-server subtest starts a server of its own.
test('inference API: routes, statuses, messages and headers as MMS', async (t) => {
  const s = await startServer(t, { props: { max_request_size: 100_000 } });
  const keepAlive = new Agent({ keepAlive: true });
  t.after(() => keepAlive.destroy());
  const I = s.inference;
  for (const [name, handler] of [
    ['noop', 'noop:handle'],
    ['echo', 'echo:handle'],
    ['status', 'status_headers:handle'],
    ['fail', 'errors:raise_error'],
    ['pexc', 'errors:prediction_exception'],
    ['none', 'errors:return_none'],
    ['oom', 'errors:memory_error'],
    ['mmsimp', 'mms_imports:handle'],
  ]) {
    const r = await registerPy(s, name!, handler!);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json(), { status: 'Workers scaled' });
  }

  await t.test('ping on an empty server: 200 Healthy, MMS headers in MMS order, 2-space JSON + newline', async (t) => {
    const empty = (await startServer(t)).inference;
    const r = await http(empty, 'GET', '/ping');
    assert.equal(r.status, 200);
    assert.equal(r.statusMessage, 'OK');
    assert.equal(r.text, '{\n  "status": "Healthy"\n}\n');
    const names = r.rawHeaders.filter((_, i) => i % 2 === 0).map((h) => h.toLowerCase());
    assert.deepEqual(names, ['content-type', 'x-request-id', 'pragma', 'cache-control', 'expires', 'content-length', 'connection']);
    assert.equal(r.headers['content-type'], 'application/json');
    assert.match(String(r.headers['x-request-id']), UUID);
    assert.equal(r.headers['pragma'], 'no-cache');
    assert.equal(r.headers['cache-control'], 'no-cache; no-store, must-revalidate, private');
    assert.equal(r.headers['expires'], 'Thu, 01 Jan 1970 00:00:00 UTC');
    assert.equal(r.headers['connection'], 'close', 'the client asked to close');
    assert.equal(r.headers['date'], undefined);
    assert.equal((await http(empty, 'GET', '/ping', undefined, {}, keepAlive)).headers['connection'], 'keep-alive');
    // any method, extra segments ignored
    assert.equal((await http(empty, 'POST', '/ping/x')).status, 200);
  });

  await t.test('prediction: handler body, empty reason phrase, no content-type unless the handler sets one', async () => {
    const r = await http(I, 'POST', '/predictions/noop', 'hello', { 'content-type': 'text/plain' });
    assert.equal(r.status, 200);
    assert.equal(r.statusMessage, '');
    assert.equal(r.text, 'OK');
    assert.equal(r.headers['content-type'], undefined);
    assert.match(String(r.headers['x-request-id']), UUID);
    assert.equal(r.headers['cache-control'], 'no-cache; no-store, must-revalidate, private');
    assert.equal(r.headers['content-length'], '2');
    assert.equal((await http(I, 'POST', '/predictions/noop', 'x', {}, keepAlive)).headers['connection'], 'keep-alive');
    const raw = await rawRequest(I, 'GET /predictions/noop HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.match(raw, /^HTTP\/1\.1 200 \r\n/);
    assert.match(raw, /\r\nconnection: close\r\n/);
    // no Host header (hand-written HTTP/1.1 clients): Netty answers, so do we
    const noHost = await rawRequest(I, 'GET /ping HTTP/1.1\r\nConnection: close\r\n\r\n');
    assert.match(noHost, /^HTTP\/1\.1 200 OK\r\n/);
    assert.ok(noHost.endsWith('{\n  "status": "Healthy"\n}\n'), noHost);
  });

  await t.test('any method but OPTIONS predicts; extra path segments are ignored', async () => {
    for (const m of ['GET', 'PUT', 'DELETE', 'PATCH']) assert.equal((await http(I, m, '/predictions/noop')).text, 'OK');
    assert.equal((await http(I, 'POST', '/predictions/noop/1.0/extra')).text, 'OK');
  });

  await t.test('handler status, phrase, headers and content type reach the client', async () => {
    const a = await http(I, 'POST', '/predictions/status', 'x', { 'content-type': 'text/plain' });
    assert.equal(a.status, 201);
    assert.equal(a.statusMessage, 'Created Thing');
    assert.equal(a.headers['content-type'], 'text/plain');
    assert.equal(a.headers['x-foo'], 'bar');
    assert.deepEqual(a.body, Buffer.from('\x00\x01raw-bytes', 'latin1'));
    const spec = { status: 299, phrase: '', headers: { 'X-A': 'b', 'Content-Length': '999' }, content_type: 'text/csv' };
    const b = await http(I, 'POST', '/predictions/status', JSON.stringify(spec), { 'content-type': 'application/json' });
    assert.equal(b.status, 299);
    assert.equal(b.statusMessage, '');
    assert.equal(b.headers['x-a'], 'b');
    assert.equal(b.headers['content-type'], 'text/csv');
    assert.equal(b.headers['content-length'], '6');
    assert.equal(b.text, 'custom');
  });

  await t.test('handler input: body with the MIME type without parameters; headers; no query params on /predictions', async () => {
    const r = await http(I, 'POST', '/predictions/echo?q=1', '{"x": 1}', {
      'content-type': 'application/json; charset=utf-8',
      'X-Custom': 'abc',
    });
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'application/json');
    const out = r.json();
    assert.deepEqual(out.param_names, ['body']);
    assert.deepEqual(out.params.body, { type: 'dict', value: { x: 1 }, content_type: 'application/json' });
    assert.equal(out.request_id, r.headers['x-request-id']);
    const headerNames = Object.keys(out.headers).map((h) => h.toLowerCase());
    assert.ok(headerNames.includes('x-custom'), JSON.stringify(out.headers));
  });

  await t.test('query params reach the handler on /invocations, /models/{m}/invoke and legacy /{m}/predict', async () => {
    const inv = (await http(I, 'POST', '/invocations?model_name=echo&a=1&z=3&a=2', 'b', { 'content-type': 'text/plain' })).json();
    assert.deepEqual(inv.param_names, ['model_name', 'a', 'z', 'body']);
    // MMS's parseRequest sends every value of a repeated name, so the handler's dict holds the last one
    assert.equal(inv.params.a.value, '2');
    assert.equal(inv.params.a.content_type, ''); // a null content type travels as length 0
    assert.deepEqual(inv.params.body, { type: 'str', value: 'b', content_type: 'text/plain' });
    const invoke = (await http(I, 'POST', '/models/echo/invoke?q=v', 'b')).json();
    assert.deepEqual(invoke.param_names, ['q', 'body']);
    const legacy = (await http(I, 'GET', '/echo/predict?q=v')).json();
    assert.deepEqual(legacy.param_names, ['q', 'body']);
    assert.equal(legacy.params.body.type, 'bytearray');
    assert.equal(legacy.params.body.content_type, '');
  });

  await t.test('multipart/form-data and x-www-form-urlencoded: one input per field', async () => {
    const boundary = 'XyZ123';
    const mp =
      `--${boundary}\r\nContent-Disposition: form-data; name="text"\r\n\r\nhello\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="data"; filename="a.bin"\r\nContent-Type: image/png\r\n\r\n\x00\x01\x02\r\n` +
      `--${boundary}--\r\n`;
    const r = (
      await http(I, 'POST', '/predictions/echo', Buffer.from(mp, 'latin1'), { 'content-type': `multipart/form-data; boundary=${boundary}` })
    ).json();
    assert.deepEqual(r.param_names, ['text', 'data']);
    assert.equal(r.params.text.value, 'hello');
    assert.equal(r.params.text.content_type, '');
    assert.equal(r.params.data.base64, 'AAEC');
    assert.equal(r.params.data.content_type, 'image/png');
    // no boundary: not multipart for Netty either; the handler gets the whole body
    const nb = await http(I, 'POST', '/predictions/echo', 'raw', { 'content-type': 'multipart/form-data' });
    assert.equal(nb.status, 200);
    assert.deepEqual(nb.json().params.body, { type: 'bytearray', value: 'raw', base64: 'cmF3', content_type: 'multipart/form-data' });
    const u = (await http(I, 'POST', '/predictions/echo', 'a=1&b=x+y', { 'content-type': 'application/x-www-form-urlencoded' })).json();
    assert.deepEqual(u.param_names, ['a', 'b']);
    assert.equal(u.params.b.value, 'x y');
  });

  await t.test('handler errors: MMS status and {code,type,message}, connection close', async () => {
    const cases: Array<[string, number, string]> = [
      ['fail', 503, 'Prediction failed'],
      ['none', 503, 'Invalid model predict output'],
      ['pexc', 599, 'Some Prediction Error'],
      ['oom', 507, 'Out of resources'],
    ];
    for (const [model, code, message] of cases) {
      const r = await http(I, 'POST', `/predictions/${model}`, 'x');
      assert.equal(r.status, code, model);
      assert.deepEqual(r.json(), { code, type: 'InternalServerException', message });
      assert.equal(r.headers['connection'], 'close');
      assert.equal(r.headers['content-type'], 'application/json');
    }
    // the worker survives a handler error
    assert.equal((await http(I, 'POST', '/predictions/fail', 'x')).status, 503);
    assert.equal((await http(I, 'POST', '/predictions/pexc', 'x')).statusMessage, 'Server Error (599)');
    // Netty's reason phrase for a code it has no name for (node would say "I'm a Teapot")
    const teapot = await http(I, 'POST', '/predictions/mmsimp', '{"fail": "no tea"}', { 'content-type': 'application/json' });
    assert.deepEqual([teapot.status, teapot.statusMessage, teapot.json().message], [418, 'Client Error (418)', 'no tea']);
  });

  await t.test('404 and 405 routing as MMS', async () => {
    const resource = {
      code: 404,
      type: 'ResourceNotFoundException',
      message: 'Requested resource is not found, please refer to API document.',
    };
    const method = {
      code: 405,
      type: 'MethodNotAllowedException',
      message: 'Requested method is not allowed, please refer to API document.',
    };
    assert.deepEqual((await http(I, 'POST', '/predictions')).json(), resource);
    assert.deepEqual((await http(I, 'GET', '/nothing/here/at/all')).json(), resource);
    assert.deepEqual((await http(I, 'GET', '/models')).json(), resource, 'management routes are not on the inference port');
    assert.deepEqual((await http(I, 'GET', '/models/noop/other')).json(), resource);
    const nf = await http(I, 'POST', '/predictions/nosuch');
    assert.equal(nf.status, 404);
    assert.deepEqual(nf.json(), { code: 404, type: 'ModelNotFoundException', message: 'Model not found: nosuch' });
    assert.equal(nf.headers['connection'], 'close');
    assert.equal((await http(I, 'GET', '/')).status, 405);
    assert.deepEqual((await http(I, 'GET', '/')).json(), method);
    assert.deepEqual((await http(I, 'GET', '/api-description/x')).json(), method);
    // Gson HTML escaping in messages
    assert.equal((await http(I, 'POST', '/predictions/a%3Db%3Cc')).text.includes('Model not found: a\\u003db\\u003cc'), true);
  });

  await t.test('/invocations without model_name: 400 unless exactly one startup model', async () => {
    const r = await http(I, 'POST', '/invocations', 'x');
    assert.equal(r.status, 400);
    assert.deepEqual(r.json(), { code: 400, type: 'BadRequestException', message: 'Parameter model_name is required.' });
    // an empty model_name is not "missing" in MMS: it is looked up (and not found)
    const empty = await http(I, 'POST', '/invocations?model_name=', 'x');
    assert.deepEqual([empty.status, empty.json()], [404, { code: 404, type: 'ModelNotFoundException', message: 'Model not found: ' }]);
  });

  await t.test('/invocations takes model_name from a form field when the query has none (as MMS)', async () => {
    const u = await http(I, 'POST', '/invocations', 'model_name=echo&x=1', { 'content-type': 'application/x-www-form-urlencoded' });
    assert.equal(u.status, 200);
    assert.deepEqual(u.json().param_names, ['model_name', 'x']);
    const boundary = 'b0undary';
    const mp =
      `--${boundary}\r\nContent-Disposition: form-data; name="model_name"\r\n\r\necho\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="data"; filename="d.bin"\r\n\r\nabc\r\n--${boundary}--\r\n`;
    const m = await http(I, 'POST', '/invocations', mp, { 'content-type': `multipart/form-data; boundary=${boundary}` });
    assert.equal(m.status, 200);
    assert.equal(m.json().params.data.value, 'abc');
    const nf = await http(I, 'POST', '/invocations', 'model_name=nosuch', { 'content-type': 'application/x-www-form-urlencoded' });
    assert.deepEqual([nf.status, nf.json().message], [404, 'Model not found: nosuch']);
  });

  await t.test('OPTIONS / and /api-description: OpenAPI of this listener; OPTIONS /predictions/{m}: per-model doc', async () => {
    const doc = (await http(I, 'OPTIONS', '/')).json();
    assert.equal(doc.openapi, '3.0.1');
    assert.deepEqual(Object.keys(doc.paths), [
      '/',
      '/{model_name}/predict',
      '/ping',
      '/predictions/{model_name}',
      '/api-description',
      '/invocations',
      '/models/{model_name}/invoke',
    ]);
    assert.deepEqual((await http(I, 'GET', '/api-description')).json(), doc);
    const mdoc = (await http(I, 'OPTIONS', '/predictions/noop')).json();
    assert.deepEqual(Object.keys(mdoc.paths), ['/prediction/noop']);
    assert.equal((await http(I, 'OPTIONS', '/predictions/nosuch')).status, 404);
    const mgmt = (await http(s.management, 'OPTIONS', '/')).json();
    assert.deepEqual(Object.keys(mgmt.paths), ['/', '/api-description', '/models', '/models/{model_name}']);
    const register = mgmt.paths['/models'].post.parameters.map((p: { name: string }) => p.name);
    assert.ok(register.includes('url') && !register.includes('model_url'));
    // the JSON body form of register is documented with the same keys
    const jsonKeys = Object.keys(mgmt.paths['/models'].post.requestBody.content['application/json'].schema.properties);
    assert.deepEqual(jsonKeys, register);
  });

  await t.test('a body over max_request_size gets a 413 with an MMS error body and the connection closes', async () => {
    const r = await http(I, 'POST', '/predictions/noop', Buffer.alloc(100_001));
    assert.equal(r.status, 413);
    assert.deepEqual(r.json(), {
      code: 413,
      type: 'RequestEntityTooLargeException',
      message: 'The request body is larger than max_request_size (100000 bytes); send a smaller one or raise max_request_size.',
    });
    assert.equal(r.headers['connection'], 'close');
    const ok = await http(I, 'POST', '/predictions/noop', Buffer.alloc(100_000));
    assert.equal(ok.status, 200);
    // chunked, no content-length: cut off while streaming
    const raw = await rawRequest(
      I,
      `POST /predictions/noop HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${(70_000).toString(16)}\r\n${'a'.repeat(70_000)}\r\n${(70_000).toString(16)}\r\n${'a'.repeat(70_000)}\r\n0\r\n\r\n`,
    );
    assert.match(raw, /^HTTP\/1\.1 413 Request Entity Too Large\r\n/);
    // Expect: 100-continue: refused before the body is sent; accepted ones get 100 Continue first
    const refused = await rawRequest(
      I,
      'POST /predictions/noop HTTP/1.1\r\nHost: x\r\nContent-Length: 100001\r\nExpect: 100-continue\r\n\r\n',
    );
    assert.match(refused, /^HTTP\/1\.1 413 /);
    const accepted = await http(I, 'POST', '/predictions/noop', Buffer.alloc(1000), { expect: '100-continue' });
    assert.equal(accepted.text, 'OK');
  });

  await t.test('ping on the management port is not an API there', async () => {
    assert.equal((await http(s.management, 'GET', '/ping')).status, 404);
  });
});
