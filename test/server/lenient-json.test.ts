import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseLenientJson } from '../../src/server/lenient-json.js';

test("parseLenientJson accepts what Gson's lenient reader accepts for a register body", () => {
  assert.deepEqual(parseLenientJson("{'url':'noop.mar', 'model_name':'noop', 'initial_workers':'1', 'synchronous':'true'}"), {
    url: 'noop.mar',
    model_name: 'noop',
    initial_workers: '1',
    synchronous: 'true',
  });
  assert.deepEqual(parseLenientJson('{url: noop.mar, initial_workers = 2; synchronous => TRUE # comment\n}'), {
    url: 'noop.mar',
    initial_workers: 2,
    synchronous: true,
  });
  assert.deepEqual(parseLenientJson("// c\n{ 'a': 'it\\'s \\u0041', \"b\": [1; 2] /* x */ , c: null }"), {
    a: "it's A",
    b: [1, 2],
    c: null,
  });
  for (const bad of ['{', "{'a' 1}", "{'a': 'x", '{} x', '{"a":}', '']) assert.equal(parseLenientJson(bad), undefined, bad);
});
