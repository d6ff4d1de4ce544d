import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { http, register, registerPy, startServer } from './server-helpers.js';

// A status no HTTP response can carry (42, 1000, -1), chosen by a handler, is answered 500 with the handler's
// message; a status that can be carried (418, 599) is sent as it is, as MMS does.
const PY_HANDLER =
  'from mms.service import PredictionException\n\n' +
  'def handle(data, context):\n' +
  '    if data is None:\n' +
  '        return None\n' +
  '    raise PredictionException("bad status %d" % data[0]["body"]["code"], data[0]["body"]["code"])\n';
const NODE_HANDLER =
  'export function handle(data) {\n' +
  '  if (data === null) return null;\n' +
  '  const code = data[0].body.code;\n' +
  // biome-ignore lint/suspicious/noTemplateCurlyInString: the handler's own JavaScript source, written to a file
  '  throw Object.assign(new Error(`bad status ${code}`), { statusCode: code });\n' +
  '}\n';

test('a status chosen by a handler that no HTTP response can carry is answered 500 with its message', async (t) => {
  const s = await startServer(t);
  await writeFile(join(s.store, 'py', 'bad_status.py'), PY_HANDLER);
  await writeFile(join(s.store, 'node', 'bad_status.mjs'), NODE_HANDLER);
  assert.equal((await registerPy(s, 'pystatus', 'bad_status:handle')).status, 200);
  assert.equal((await registerPy(s, 'perreq', 'status_headers:handle')).status, 200);
  const js = await register(s, { url: 'node', model_name: 'jsstatus', handler: 'bad_status:handle', runtime: 'node', initial_workers: 1 });
  assert.equal(js.status, 200, js.text);
  const json = { 'content-type': 'application/json' };

  await t.test('PredictionException / statusCode: the handler status, or 500 when it is not one', async () => {
    for (const model of ['pystatus', 'jsstatus']) {
      for (const [code, status] of [
        [42, 500],
        [1000, 500],
        [-1, 500],
        [418, 418],
      ] as const) {
        const r = await http(s.inference, 'POST', `/predictions/${model}`, JSON.stringify({ code }), json);
        assert.equal(r.status, status, `${model} ${code}`);
        assert.deepEqual(r.json(), { code: status, type: 'InternalServerException', message: `bad status ${code}` }, `${model} ${code}`);
      }
    }
  });

  await t.test('set_response_status for one request: the same rule, the handler body and phrase kept', async () => {
    for (const [code, status] of [
      [42, 500],
      [1000, 500],
      [299, 299],
    ] as const) {
      const r = await http(s.inference, 'POST', '/predictions/perreq', JSON.stringify({ status: code, phrase: 'Odd' }), json);
      assert.deepEqual([r.status, r.statusMessage, r.text], [status, 'Odd', 'custom'], String(code));
    }
  });

  await t.test('the worker survives and the server keeps answering', async () => {
    assert.equal((await http(s.inference, 'GET', '/ping')).json().status, 'Healthy');
    const r = await http(s.inference, 'POST', '/predictions/pystatus', JSON.stringify({ code: 503 }), json);
    assert.equal(r.status, 503);
  });
});
