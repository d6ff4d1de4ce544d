import assert from 'node:assert/strict';
import { mkdir, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { isMarError } from '../../src/errors.js';
import { isSameAddress, loadConfig, parseListenAddress, parseProperties } from '../../src/server/config.js';
import { parseMultipart, parseUrl } from '../../src/server/request-parser.js';
import { reasonPhrase, toMmsJson } from '../../src/server/responses.js';
import { tempDir } from '../helpers/util.js';

test('parseProperties reads Java .properties: separators, comments, continuations, escapes', () => {
  const p = parseProperties('# comment\n! also\n  a=1\nb : two words \nc three\nd=line\\\n   continued\ne=tab\\there\nf=\\u0041\nempty=\n');
  assert.equal(p.get('a'), '1');
  assert.equal(p.get('b'), 'two words ');
  assert.equal(p.get('c'), 'three');
  assert.equal(p.get('d'), 'linecontinued');
  assert.equal(p.get('e'), 'tab\there');
  assert.equal(p.get('f'), 'A');
  assert.equal(p.get('empty'), '');
  assert.equal(p.has('# comment'), false);
});

test('listen addresses: MMS syntax, default ports, unix sockets, https refused', () => {
  assert.deepEqual(parseListenAddress('http://0.0.0.0:9090', 'k', 80), {
    kind: 'tcp',
    host: '0.0.0.0',
    port: 9090,
    url: 'http://0.0.0.0:9090',
  });
  assert.equal((parseListenAddress('http://127.0.0.1', 'management_address', 8081) as { port: number }).port, 8081);
  assert.deepEqual(parseListenAddress('unix:/tmp/x.sock', 'k', 80), { kind: 'unix', path: '/tmp/x.sock', url: 'unix:/tmp/x.sock' });
  assert.throws(() => parseListenAddress('https://127.0.0.1:8443', 'inference_address', 443), /https is not supported/);
  assert.throws(() => parseListenAddress('127.0.0.1:8080', 'inference_address', 80), /expected http:\/\/host\[:port\]/);
  assert.throws(() => parseListenAddress('http://127.0.0.1:99999', 'inference_address', 80), /0-65535/);
  const a = parseListenAddress('http://127.0.0.1:8080', 'k', 80);
  assert.equal(isSameAddress(a, parseListenAddress('http://127.0.0.1:8080', 'k', 80)), true);
  const zero = parseListenAddress('http://127.0.0.1:0', 'k', 80);
  assert.equal(isSameAddress(zero, zero), false, 'two port-0 addresses are two listeners');
});

test('loadConfig: defaults, file < MMS_* env < CLI, minutes vs seconds, frozen, one-line errors', async (t) => {
  const dir = await tempDir(t);
  const none = loadConfig({ cwd: dir, env: {} });
  assert.equal(none.configFile, null);
  assert.equal(none.inferenceAddress.url, 'http://127.0.0.1:8080');
  assert.equal(none.managementAddress.url, 'http://127.0.0.1:8081');
  assert.equal(none.modelStore, null);
  assert.equal(none.jobQueueSize, 100);
  assert.equal(none.maxRequestSize, 6553500);
  assert.equal(none.defaultResponseTimeoutSeconds, 7200, 'default_response_timeout=120 is minutes');
  assert.equal(none.defaultWorkersPerModel, 0);
  assert.equal(none.decodeInputRequest, true);
  assert.deepEqual(none.allowedUrls, []);
  assert.ok(Object.isFrozen(none));

  const file = join(dir, 'config.properties');
  await writeFile(
    file,
    'model_store=store\njob_queue_size=5\ndefault_response_timeout=2\nallowed_urls=https://models\\\\.example\\\\.com/.*\nload_models=a.mar,b=c.mar\nnumber_of_gpu=2\n',
  );
  await mkdir(join(dir, 'store'));
  const c = loadConfig({ cwd: dir, env: { MMS_JOB_QUEUE_SIZE: '9' } });
  assert.equal(c.configFile, file, './config.properties is read by default');
  assert.equal(c.modelStore, join(dir, 'store'));
  assert.equal(c.jobQueueSize, 9, 'env wins over the file');
  assert.equal(c.defaultResponseTimeoutSeconds, 120);
  assert.deepEqual(c.loadModels, ['a.mar', 'b=c.mar']);
  assert.equal(c.allowedUrls[0]!.test('https://models.example.com/x.mar'), true);
  assert.equal(c.allowedUrls[0]!.test('https://evil.com/?https://models.example.com/x.mar'), false, 'patterns match the whole url');
  await rmdir(join(dir, 'store'));
  assert.throws(() => loadConfig({ cwd: dir, env: {} }), /model_store .*store is not a directory/);
  await mkdir(join(dir, 'store'));
  const cli = loadConfig({ cwd: dir, env: {}, modelStore: dir, models: ['x=y.mar'] });
  assert.equal(cli.modelStore, dir);
  assert.deepEqual(cli.loadModels, ['x=y.mar']);
  const secs = loadConfig({ cwd: dir, env: { MMS_DEFAULT_RESPONSE_TIMEOUT_SECONDS: '30' } });
  assert.equal(secs.defaultResponseTimeoutSeconds, 30);

  for (const [key, value, why] of [
    ['MMS_JOB_QUEUE_SIZE', '0', /job_queue_size="0": expected an integer >= 1/],
    ['MMS_MAX_REQUEST_SIZE', '1e3', /max_request_size="1e3"/],
    ['MMS_DECODE_INPUT_REQUEST', 'yes', /expected true or false/],
    ['MMS_ALLOWED_URLS', '(', /not a valid regular expression/],
  ] as const) {
    assert.throws(
      () => loadConfig({ cwd: dir, env: { [key]: value } }),
      (err: unknown) => isMarError(err) && why.test(err.message) && !err.message.includes('\n'),
    );
  }
  assert.throws(() => loadConfig({ cwd: dir, env: {}, configFile: 'missing.properties' }), /cannot read config file/);
});

test('toMmsJson: Gson pretty printing, null fields omitted, HTML characters escaped, trailing newline', () => {
  assert.equal(toMmsJson({ status: 'Healthy' }), '{\n  "status": "Healthy"\n}\n');
  assert.equal(toMmsJson({ a: null, b: undefined, c: [] }), '{\n  "c": []\n}\n');
  assert.equal(toMmsJson({ m: `a=b <c> & 'd'` }), '{\n  "m": "a\\u003db \\u003cc\\u003e \\u0026 \\u0027d\\u0027"\n}\n');
  assert.deepEqual(JSON.parse(toMmsJson({ m: `=<>&'` })), { m: `=<>&'` });
});

test('reason phrases as Netty: standard ones, MMS 210, class fallback for unknown codes', () => {
  assert.equal(reasonPhrase(404), 'Not Found');
  assert.equal(reasonPhrase(210), 'Partial Success');
  assert.equal(reasonPhrase(413), 'Request Entity Too Large');
  assert.equal(reasonPhrase(599), 'Server Error (599)');
  assert.equal(reasonPhrase(299), 'Successful (299)');
  // Netty's phrases, not node's: MMS answers a PredictionException(code) with HttpResponseStatus.valueOf(code)
  assert.equal(reasonPhrase(418), 'Client Error (418)');
  assert.equal(reasonPhrase(425), 'Unordered Collection');
  assert.equal(reasonPhrase(414), 'Request-URI Too Long');
  assert.equal(reasonPhrase(508), 'Server Error (508)');
});

test('parseUrl: Java split semantics, decoding, query', () => {
  assert.deepEqual(parseUrl('/').segments, []);
  assert.deepEqual(parseUrl('/models/noop/').segments, ['', 'models', 'noop']);
  assert.deepEqual(parseUrl('/predictions/a%20b?x=1&x=2').segments, ['', 'predictions', 'a b']);
  assert.equal(parseUrl('/p?x=1&x=2&y=a+b').query.get('x'), '1');
  assert.equal(parseUrl('/p?y=a+b').query.get('y'), 'a b');
  assert.deepEqual(parseUrl('/bad%zz').segments, ['', 'bad%zz']);
});

test('parseMultipart: fields without content type, files with theirs, binary-safe, strict', () => {
  const body = Buffer.concat([
    Buffer.from('--b\r\nContent-Disposition: form-data; name="f1"\r\n\r\nv1\r\n'),
    Buffer.from('--b\r\nContent-Disposition: form-data; name="img"; filename="x.png"\r\nContent-Type: image/png; q=1\r\n\r\n'),
    Buffer.from([0, 13, 10, 45, 45, 255]),
    Buffer.from('\r\n--b\r\nContent-Disposition: form-data; name="raw"; filename="y"\r\n\r\nz\r\n--b--\r\n'),
  ]);
  const params = parseMultipart(body, 'multipart/form-data; boundary=b');
  assert.deepEqual(
    params.map((p) => [p.name, p.contentType]),
    [
      ['f1', null],
      ['img', 'image/png'],
      ['raw', 'application/octet-stream'],
    ],
  );
  assert.deepEqual(params[1]!.value, Buffer.from([0, 13, 10, 45, 45, 255]));
  assert.throws(() => parseMultipart(body, 'multipart/form-data'), /missing boundary/);
  assert.throws(() => parseMultipart(Buffer.from('--b\r\nno headers end'), 'multipart/form-data; boundary=b'), /malformed/);
});
