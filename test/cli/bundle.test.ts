/**
 * The CLIs run from their esbuild bundle (scripts/build-bundle.js, dist/bundle): every launcher starts, and with
 * --debug (or MAR_DEBUG=1) a stack trace still names our TypeScript sources through the bundle's source map.
 */

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { TOOL_VERSION } from '../../src/util/package-info.js';
import { run, SERVER_BIN, server, tempDir } from '../helpers/util.js';

test('every launcher runs its bundled CLI', async () => {
  for (const name of ['model-server', 'model-archiver', 'torchserve', 'model-server-entrypoint']) {
    const r = await run(process.execPath, [join(SERVER_BIN, '..', `${name}.js`), '--help']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^Usage: ${name} `));
  }
  const version = await run(process.execPath, [SERVER_BIN, '--version']);
  assert.equal(version.stdout.trim(), TOOL_VERSION);
});

test('--debug and MAR_DEBUG=1: the stack trace names src/*.ts lines; without them one line', async (t) => {
  const missing = join(await tempDir(t), 'missing.mar');
  const plain = await server(['predict', missing, '--data', 'x']);
  assert.equal(plain.code, 1);
  assert.equal(plain.stderr.split('\n').filter(Boolean).length, 1, plain.stderr);
  for (const [args, env] of [
    [['predict', missing, '--data', 'x', '--debug'], {}],
    [['predict', missing, '--data', 'x'], { MAR_DEBUG: '1' }],
  ] as const) {
    const r = await server(args, { env });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^error: model .*missing\.mar not found/);
    assert.match(r.stderr, /\n {4}at .*\(.*[/\\]src[/\\]runtime[/\\]model\.ts:\d+:\d+\)\n/, r.stderr);
    assert.match(r.stderr, /[/\\]src[/\\]cli[/\\]commands[/\\]predict\.ts:\d+:\d+/);
  }
});
