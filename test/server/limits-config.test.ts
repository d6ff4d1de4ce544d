/**
 * The reliability keys of config.properties (connection limits, archive limits): defaults, MMS_* overrides,
 * refused values, and register held to the archive limits the keys set.
 */
import assert from 'node:assert/strict';
import { copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { DEFAULT_ARCHIVE_LIMITS } from '../../src/archive/limits.js';
import { createArchive } from '../../src/archive/pack.js';
import { isMarError } from '../../src/errors.js';
import { loadConfig } from '../../src/server/config.js';
import { FIXTURES, tempDir } from '../helpers/util.js';
import { http, startServer } from './server-helpers.js';

test('connection and archive limits: defaults, MMS_* environment overrides, refused values', async (t) => {
  const cwd = await tempDir(t);
  const none = loadConfig({ cwd, env: {} });
  assert.deepEqual(none.connectionLimits, {
    headerTimeoutMs: 20_000,
    requestTimeoutMs: 60_000,
    keepAliveTimeoutMs: 60_000,
    maxConnections: 1000,
    maxHeaderBytes: 16384,
    maxRequestBytes: 6553500,
  });
  assert.deepEqual({ ...none.archiveLimits }, { ...DEFAULT_ARCHIVE_LIMITS });
  const set = loadConfig({
    cwd,
    env: { MMS_MAX_CONNECTIONS: '5', MMS_REQUEST_BODY_TIMEOUT: '0', MMS_MAX_ARCHIVE_RATIO: '50' },
    properties: { max_manifest_size: 1024, request_header_timeout: 3 },
  });
  assert.equal(set.connectionLimits.maxConnections, 5);
  assert.equal(set.connectionLimits.requestTimeoutMs, 0, '0 = no limit');
  assert.equal(set.connectionLimits.headerTimeoutMs, 3000);
  assert.equal(set.archiveLimits.maxRatio, 50);
  assert.equal(set.archiveLimits.maxManifestBytes, 1024);
  for (const [key, value, why] of [
    ['max_header_size', '100', /expected an integer >= 1024/],
    ['max_connections', '-1', /expected an integer >= 0/],
    ['max_archive_entries', '0', /expected an integer >= 1/],
    ['request_body_timeout', 'soon', /expected an integer >= 0/],
  ] as const) {
    assert.throws(
      () => loadConfig({ cwd, env: {}, properties: { [key]: value } }),
      (e: unknown) => isMarError(e) && e.code === 'INPUT_INVALID' && e.message.includes(key) && why.test(e.message),
    );
  }
});

test('register is held to the archive limits config.properties sets, and the message names the key', async (t) => {
  const s = await startServer(t, { props: { max_archive_entries: 3, max_manifest_size: 100_000 } });
  const model = join(s.dir, 'model');
  await mkdir(model);
  await copyFile(join(FIXTURES, 'handlers', 'python', 'noop.py'), join(model, 'noop.py'));
  await copyFile(join(FIXTURES, 'handlers', 'python', 'echo.py'), join(model, 'echo.py'));
  await createArchive({ modelName: 'four', handler: 'noop:handle', modelPath: model, exportPath: s.store });
  // noop.py, echo.py, FILES.sha256, MANIFEST.json: one entry too many
  const r = await http(s.management, 'POST', '/models?url=four.mar');
  assert.equal(r.status, 400);
  assert.equal(r.json().type, 'InvalidModelException');
  assert.match(r.json().message, /has more than 3 entries; if you trust it, raise max_archive_entries in config\.properties$/);
});
