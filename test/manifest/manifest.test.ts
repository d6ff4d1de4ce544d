import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MarError } from '../../src/errors.js';
import { parseEntryPoint } from '../../src/handler/entry-point.js';
import { moduleCandidates } from '../../src/handler/locate.js';
import {
  buildManifest,
  formatCreatedOn,
  migrateLegacyManifest,
  parseManifestJson,
  serializeManifest,
} from '../../src/manifest/manifest.js';
import { parseModelConfig } from '../../src/manifest/model-config.js';
import { validateManifest } from '../../src/manifest/validate.js';

test('createdOn uses TorchServe day-first format in UTC', () => {
  assert.equal(formatCreatedOn(new Date(Date.UTC(2026, 10, 4, 7, 8, 9))), '04/11/2026 07:08:09');
});

test('built manifest carries both MMS 1.0 and TorchServe fields and validates', () => {
  const m = buildManifest({
    modelName: 'iris',
    handler: 'model_handler:handle',
    runtime: 'python3',
    archiverVersion: '0.1.0',
    createdOn: new Date(0),
    modelVersion: '2.0',
    serializedFile: 'w.npz',
  });
  assert.deepEqual(Object.keys(m), [
    'createdOn',
    'runtime',
    'model',
    'archiverVersion',
    'modelServerVersion',
    'implementationVersion',
    'specificationVersion',
  ]);
  assert.deepEqual(Object.keys(m.model), ['modelName', 'serializedFile', 'handler', 'modelVersion']);
  assert.equal(validateManifest(m).valid, true);
  assert.match(serializeManifest(m).toString(), /^\{\n  "createdOn": "01\/01\/1970 00:00:00",/);
});

test('schema rejects a model name with a trailing newline and lists each problem', () => {
  const r = validateManifest({ runtime: 'python9', model: { modelName: 'bad\n', handler: '' } });
  assert.equal(r.valid, false);
  assert.ok(r.errors.some((e) => e.startsWith('runtime: must be one of')));
  assert.ok(r.errors.some((e) => e.startsWith('model.modelName:')));
  assert.ok(r.errors.some((e) => e.startsWith('model.handler:')));
});

test('MMS 1.0 and TorchServe manifests from the reference validate', () => {
  assert.ok(
    validateManifest({
      runtime: 'python',
      model: { modelName: 'edge', handler: 'handler:handle' },
      modelServerVersion: '1.0',
      implementationVersion: '1.0',
      specificationVersion: '1.0',
    }).valid,
  );
  assert.ok(
    validateManifest({
      createdOn: '24/11/2026 19:48:06',
      runtime: 'python',
      model: {
        modelName: 'ts_edge',
        serializedFile: 'model.pt',
        handler: 'my_handler.py',
        modelFile: 'model_def.py',
        modelVersion: '1.0',
        requirementsFile: 'requirements.txt',
        configFile: 'model-config.yaml',
      },
      archiverVersion: '0.12.0',
    }).valid,
  );
});

test('legacy 0.x manifest migrates like MMS does', () => {
  const m = migrateLegacyManifest({
    Engine: { MXNet: 0.12 },
    'Model-Archive-Version': 0.1,
    Model: { 'Model-Name': 'squeezenet', Service: 'mxnet_vision_service.py', Symbol: 's.json', Parameters: 'p.params' },
  });
  assert.equal(m.model.modelName, 'squeezenet');
  assert.equal(m.model.handler, 'mxnet_vision_service.py');
  assert.equal(m.model.modelVersion, 'snapshot');
  assert.equal(m.specificationVersion, '0.1');
  assert.ok(validateManifest(m).valid);
});

test('malformed manifest JSON is a one-line MANIFEST_INVALID error', () => {
  assert.throws(
    () => parseManifestJson(Buffer.from('{"a":'), 'x.mar!MAR-INF/MANIFEST.json'),
    (e: unknown) => e instanceof MarError && e.code === 'MANIFEST_INVALID' && !e.message.includes('\n'),
  );
});

test('model config: YAML errors and wrong types of TorchServe keys are reported', () => {
  assert.deepEqual(parseModelConfig('minWorkers: 1\nhandler:\n  topk: 3\n', 'c.yaml'), { minWorkers: 1, handler: { topk: 3 } });
  assert.throws(() => parseModelConfig('batchSize: "eight"\n', 'c.yaml'), /batchSize must be an integer/);
  assert.throws(() => parseModelConfig('a: [1,\n', 'c.yaml'), /c\.yaml is not valid YAML/);
  // One complete line: no dangling ':' where the library's code excerpt was cut off.
  assert.throws(
    () => parseModelConfig('minWorkers: [\n', 'c.yaml'),
    (e: Error) => /at line \d+, column \d+$/.test(e.message) && !e.message.includes('\n'),
  );
});

test('entry points parse as MMS reads them', () => {
  assert.deepEqual(parseEntryPoint('model_handler:handle'), {
    raw: 'model_handler:handle',
    dir: '',
    module: 'model_handler',
    functionName: 'handle',
    hasExplicitFunction: true,
  });
  const e = parseEntryPoint('sub/h.py:fn');
  assert.equal(e.dir, 'sub');
  assert.equal(e.module, 'h');
  assert.equal(e.functionName, 'fn');
  assert.equal(parseEntryPoint('h').functionName, 'handle');
  assert.deepEqual(moduleCandidates(parseEntryPoint('pkg.h'), 'python3'), ['pkg/h.py', 'pkg/h/__init__.py']);
  assert.deepEqual(moduleCandidates(parseEntryPoint('h:f'), 'node'), ['h.js', 'h.mjs', 'h.cjs']);
});

test('the build-time precompiled validator answers exactly like a fresh Ajv compile of the schema', async () => {
  const { createRequire } = await import('node:module');
  const { packagePath } = await import('../../src/util/package-info.js');
  const { compileSchemaValidator } = await import('../../src/manifest/validate.js');
  const precompiled = createRequire(import.meta.url)(packagePath('dist', 'manifest-validator.cjs')) as (m: unknown) => boolean;
  const fresh = compileSchemaValidator();
  const samples: unknown[] = [
    { runtime: 'python', model: { modelName: 'a', handler: 'h' } },
    { runtime: 'python9', model: { modelName: 'bad\n', handler: '' } },
    { createdOn: '1/1/2020 00:00:00', runtime: 'node', model: { modelName: 'x', handler: 'h', modelVersion: '' } },
    { runtime: 'LSP', model: { modelName: 'x', handler: 'h', extensions: [] }, engine: {} },
    null,
    [],
  ];
  for (const s of samples) {
    assert.equal(precompiled(s), fresh(s), JSON.stringify(s));
    const errs = (v: { errors?: unknown }) => JSON.stringify(v.errors ?? null);
    assert.equal(errs(precompiled as unknown as { errors?: unknown }), errs(fresh), JSON.stringify(s));
  }
});
