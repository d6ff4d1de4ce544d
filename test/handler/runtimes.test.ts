/** The runtime table: everything that lists runtimes agrees with it, and the refusals keep their one-line texts. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { MarError } from '../../src/errors.js';
import {
  CREATE_RUNTIMES,
  handlerLanguage,
  launcherOf,
  MANIFEST_RUNTIMES,
  REGISTER_RUNTIMES,
  resolveRuntime,
  WORKER_RUNTIMES,
} from '../../src/handler/runtimes.js';
import { validateManifest } from '../../src/manifest/validate.js';
import { listApis } from '../../src/server/openapi.js';
import { packagePath } from '../../src/util/package-info.js';

test("the manifest schema's runtime enum is the table's manifest runtimes (the schema is a published file, so it is checked, not generated)", () => {
  const schema = JSON.parse(readFileSync(packagePath('schemas', 'manifest.schema.json'), 'utf8')) as {
    properties: { runtime: { enum: string[] } };
  };
  assert.deepEqual(schema.properties.runtime.enum, [...MANIFEST_RUNTIMES]);
  // and the validator compiled from it at build time says so too
  const model = { modelName: 'm', handler: 'h' };
  for (const runtime of MANIFEST_RUNTIMES) assert.deepEqual(validateManifest({ runtime, model }).errors, [], runtime);
  assert.deepEqual(validateManifest({ runtime: 'ruby', model }).errors, [`runtime: must be one of ${MANIFEST_RUNTIMES.join(', ')}`]);
});

test('which runtimes each part accepts and runs', () => {
  assert.deepEqual([...MANIFEST_RUNTIMES], ['python', 'python2', 'python3', 'node', 'LSP']);
  assert.deepEqual([...CREATE_RUNTIMES], ['python', 'python2', 'python3', 'node']);
  assert.deepEqual([...REGISTER_RUNTIMES], ['python', 'python2', 'python3', 'node']);
  assert.deepEqual([...WORKER_RUNTIMES], ['python', 'python3', 'node']);
  assert.deepEqual(WORKER_RUNTIMES.map(launcherOf), ['python', 'python', 'node']);
  assert.deepEqual(['python', 'python2', 'python3', 'node', 'LSP', 'unknown'].map(handlerLanguage), [
    'python',
    'python',
    'python',
    'node',
    null,
    'python',
  ]);
});

test('the OpenAPI register runtime enums are the register runtimes', () => {
  const doc = JSON.stringify(listApis({ inference: false, management: true }));
  const enums = [...doc.matchAll(/"enum":(\[[^\]]*\])/g)].map((m) => JSON.parse(m[1]!) as string[]).filter((e) => e.includes('node'));
  assert.equal(enums.length, 2);
  for (const e of enums) assert.deepEqual(e, [...REGISTER_RUNTIMES]);
});

test('resolveRuntime: absent or empty is python; refusals are one line each', () => {
  assert.equal(resolveRuntime(undefined), 'python');
  assert.equal(resolveRuntime(' '), 'python');
  assert.equal(resolveRuntime('python3'), 'python3');
  assert.equal(resolveRuntime(' node '), 'node');
  const refused = (runtime: string, message: string): void =>
    assert.throws(
      () => resolveRuntime(runtime),
      (e: unknown) => e instanceof MarError && e.code === 'RUNTIME_UNSUPPORTED' && e.message === message,
    );
  refused(
    'python2',
    'runtime python2 is not supported: Python 2 reached end of life in 2020; port the handler and use python3 (--runtime python3)',
  );
  refused('LSP', 'runtime LSP (TorchServe large model service) is not supported: use python3 or node');
  refused('ruby', 'runtime "ruby" is not supported: use python, python3 or node');
});
