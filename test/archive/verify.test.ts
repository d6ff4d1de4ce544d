import assert from 'node:assert/strict';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { type ProblemCode, parseDigestFile, verifyArchive } from '../../src/archive/verify.js';
import { MarError } from '../../src/errors.js';
import { checkPythonEntryPoint, hasNodeExport } from '../../src/handler/entry-point-check.js';
import { BAD_SHAPES, buildReferenceArchives, GOOD_SHAPES, type ReferenceShape, suiteDir } from '../helpers/reference-archives.js';
import { run } from '../helpers/util.js';

const dir = await suiteDir();
const shapes = [...GOOD_SHAPES, ...BAD_SHAPES].filter((s) => s !== 'sparse-5g');
const paths = (await buildReferenceArchives(dir, shapes)) as Record<ReferenceShape, string>;

const SOUND: ReferenceShape[] = [
  'mms',
  'torchserve',
  'torchserve-store',
  'torchserve-tgz',
  'tgz-dot',
  'node',
  'with-digests',
  'unpacked',
  'infozip',
  'bomb',
];

test('archives in the shapes MMS 1.0.4, TorchServe 0.12 (zip, zip-store, tgz), Info-ZIP and ours verify clean', async () => {
  for (const shape of SOUND) {
    const r = await verifyArchive(paths[shape]);
    assert.deepEqual(r.problems, [], `${shape}: ${JSON.stringify(r.problems)}`);
    assert.equal(r.ok, true, shape);
  }
});

/** Each hostile or broken archive -> exactly these problems (code and entry). */
const EXPECTED: [ReferenceShape, [ProblemCode, string | undefined][]][] = [
  ['legacy', [['MANIFEST_LEGACY', 'MANIFEST.json']]],
  ['tgz-no-root', [['TGZ_NO_ROOT', undefined]]],
  ['stored-dd', [['STORED_WITH_DATA_DESCRIPTOR', 'weights.bin']]],
  ['cp437', [['NAME_NOT_UTF8', 'caf\u00e9.txt']]],
  [
    'backslash',
    [
      ['NAME_BACKSLASH', 'MAR-INF\\MANIFEST.json'],
      ['MANIFEST_MISSING', undefined],
    ],
  ],
  ['duplicate', [['NAME_DUPLICATE', 'MAR-INF/MANIFEST.json']]],
  ['dotdot', [['UNSAFE_PATH', '../../evil.txt']]],
  ['absolute', [['UNSAFE_PATH', '/tmp/evil.txt']]],
  ['symlink', [['LINK_ENTRY', 'passwd']]],
  ['bad-crc', [['CRC_MISMATCH', 'weights.bin']]],
  ['lying-size', [['SIZE_MISMATCH', 'zeros.bin']]],
  ['truncated', [['ARCHIVE_CORRUPT', undefined]]],
  ['truncated-tgz', [['ARCHIVE_CORRUPT', undefined]]],
  ['no-manifest', [['MANIFEST_MISSING', undefined]]],
  ['bad-handler', [['HANDLER_MISSING', undefined]]],
  ['bad-entry-point', [['HANDLER_ENTRY_POINT', 'model_handler.py']]],
  [
    'bad-config',
    [
      ['FILE_MISSING', undefined],
      ['CONFIG_INVALID', 'model-config.yaml'],
    ],
  ],
  ['bad-schema', [['MANIFEST_SCHEMA', 'MAR-INF/MANIFEST.json']]],
  [
    'tampered-digests',
    [
      ['DIGEST_MISMATCH', 'model_handler.py'],
      ['DIGEST_UNLISTED', 'added.txt'],
      ['DIGEST_MISSING_ENTRY', 'gone.txt'],
    ],
  ],
  ['tgz-dotdot', [['UNSAFE_PATH', 'ts_edge/../../evil.txt']]],
  [
    'tgz-absolute',
    [
      ['UNSAFE_PATH', '/tmp/evil.txt'],
      ['MANIFEST_MISSING', undefined],
    ],
  ],
  ['tgz-symlink', [['LINK_ENTRY', 'ts_edge/passwd']]],
  ['tgz-hardlink', [['LINK_ENTRY', 'ts_edge/shadow']]],
];

for (const [shape, expected] of EXPECTED) {
  test(`verify reports exactly the problem in a ${shape} archive`, async () => {
    const r = await verifyArchive(paths[shape]);
    assert.equal(r.ok, false);
    const got = r.problems.map((p) => [p.code, p.path] as [ProblemCode, string | undefined]);
    assert.deepEqual(got.sort(), [...expected].sort());
    for (const p of r.problems) {
      assert.ok(!p.message.includes('\n'), 'one line per problem');
      assert.ok(p.message.length > 20, 'says what is wrong and how to fix it');
    }
  });
}

test('problem messages name the consequence and the fix', async () => {
  const dd = await verifyArchive(paths['stored-dd']);
  assert.match(dd.problems[0]!.message, /only DEFLATED entries can have EXT descriptor/);
  const crc = await verifyArchive(paths['bad-crc']);
  assert.match(crc.problems[0]!.message, /CRC-32 is [0-9a-f]{8} but the archive records [0-9a-f]{8}/);
  const handler = await verifyArchive(paths['bad-handler']);
  assert.match(handler.problems[0]!.message, /looked for model_handler\.py, model_handler\/__init__\.py/);
  const cfg = await verifyArchive(paths['bad-config']);
  assert.match(cfg.problems.find((p) => p.code === 'CONFIG_INVALID')!.message, /batchSize must be an integer/);
  const truncated = await verifyArchive(paths.truncated);
  assert.match(truncated.problems[0]!.message, /truncated/);
  assert.equal(truncated.format, 'zip');
  const truncatedTgz = await verifyArchive(paths['truncated-tgz']);
  assert.match(truncatedTgz.problems[0]!.message, /truncated/);
  assert.equal(truncatedTgz.format, 'tgz');
});

test('verify refuses what is not an archive with ARCHIVE_UNSUPPORTED, and a missing path with INPUT_NOT_FOUND', async () => {
  await assert.rejects(verifyArchive(paths['not-an-archive']), (e: unknown) => e instanceof MarError && e.code === 'ARCHIVE_UNSUPPORTED');
  await assert.rejects(verifyArchive(join(dir, 'nope.mar')), (e: unknown) => e instanceof MarError && e.code === 'INPUT_NOT_FOUND');
});

test('verify on a model directory flags symlinks and checks the handler', async () => {
  const model = join(dir, 'dir-with-link');
  await mkdir(join(model, 'MAR-INF'), { recursive: true });
  await writeFile(
    join(model, 'MAR-INF', 'MANIFEST.json'),
    JSON.stringify({ runtime: 'python', model: { modelName: 'd', handler: 'h:predict' } }),
  );
  await writeFile(join(model, 'h.py'), 'import os\n\nasync def predict(data, context):\n    return data\n');
  await symlink('/etc/hostname', join(model, 'host'));
  const r = await verifyArchive(model);
  assert.deepEqual(
    r.problems.map((p) => [p.code, p.path]),
    [['LINK_ENTRY', 'host']],
  );
});

test('a zip made one directory too high: the missing manifest is found one level down and the fix named', async () => {
  const { run } = await import('../helpers/util.js');
  const parent = join(dir, 'parent');
  await mkdir(join(parent, 'mymodel', 'MAR-INF'), { recursive: true });
  await writeFile(
    join(parent, 'mymodel', 'MAR-INF', 'MANIFEST.json'),
    JSON.stringify({ runtime: 'python', model: { modelName: 'm', handler: 'h' } }),
  );
  await writeFile(join(parent, 'mymodel', 'h.py'), 'def handle(d, c):\n    return d\n');
  const zip = join(dir, 'too-high.mar');
  const r = await run('zip', ['-qr', zip, 'mymodel'], { cwd: parent });
  assert.equal(r.code, 0, r.stderr);
  const v = await verifyArchive(zip);
  const missing = v.problems.find((p) => p.code === 'MANIFEST_MISSING')!;
  assert.match(missing.message, /there is "mymodel\/MAR-INF\/MANIFEST\.json": the archive was made from the directory above the model/);
  const { inspectArchive } = await import('../../src/archive/inspect.js');
  assert.equal((await inspectArchive(zip)).nestedManifest, 'mymodel/MAR-INF/MANIFEST.json');
});

test('names differing only in case are a warning (they collide on macOS and Windows)', async () => {
  const model = join(dir, 'case');
  await mkdir(join(model, 'MAR-INF'), { recursive: true });
  await writeFile(join(model, 'MAR-INF', 'MANIFEST.json'), JSON.stringify({ runtime: 'python', model: { modelName: 'c', handler: 'h' } }));
  await writeFile(join(model, 'h.py'), 'def handle(d, c):\n    return d\n');
  await writeFile(join(model, 'Vocab.txt'), 'a');
  await writeFile(join(model, 'vocab.txt'), 'b');
  const r = await verifyArchive(model);
  assert.equal(r.ok, true);
  assert.deepEqual(
    r.warnings.map((w) => [w.code, w.path]),
    [['NAME_CASE_COLLISION', 'vocab.txt']],
  );
});

test('TorchServe built-in handlers: verify says which class runs and what it needs; TorchServe-only ones are a warning', async () => {
  const manifestWith = async (name: string, handler: string): Promise<string> => {
    const model = join(dir, name);
    await mkdir(join(model, 'MAR-INF'), { recursive: true });
    await writeFile(
      join(model, 'MAR-INF', 'MANIFEST.json'),
      JSON.stringify({ runtime: 'python', model: { modelName: 'b', handler, modelVersion: '1.0' } }),
    );
    return model;
  };
  const ours = await verifyArchive(await manifestWith('builtin', 'image_classifier'));
  assert.equal(ours.ok, true);
  assert.deepEqual(ours.warnings, []);
  assert.deepEqual(ours.handler, {
    handler: 'image_classifier',
    runs: 'a TorchServe built-in handler: model-server runs ts.torch_handler.image_classifier.ImageClassifier (needs torch, torchvision, PIL)',
    needs: ['torch', 'torchvision', 'PIL'],
  });
  const theirs = await verifyArchive(await manifestWith('builtin-ts-only', 'trt_llm_handler'));
  assert.equal(theirs.ok, true);
  assert.deepEqual(
    theirs.warnings.map((w) => [w.code, w.message]),
    [
      [
        'HANDLER_BUILTIN',
        'handler "trt_llm_handler" is a TorchServe built-in handler that only TorchServe ships: MMS and model-server cannot run it',
      ],
    ],
  );
});

test('a handler module of the archive: verify names it and the known packages it imports', async () => {
  const model = join(dir, 'imports');
  await mkdir(join(model, 'MAR-INF'), { recursive: true });
  await writeFile(join(model, 'MAR-INF', 'MANIFEST.json'), JSON.stringify({ runtime: 'python', model: { modelName: 'i', handler: 'h' } }));
  await writeFile(
    join(model, 'h.py'),
    'import json\nimport numpy as np\nfrom ts.torch_handler.image_classifier import ImageClassifier\n\n\nclass H(ImageClassifier):\n    pass\n',
  );
  assert.deepEqual((await verifyArchive(model)).handler, {
    handler: 'h',
    runs: 'h.py in the archive',
    needs: ['torch', 'torchvision', 'PIL', 'numpy'],
  });
});

test('Python entry points resolve as MMS does: the function if present, else exactly one class', () => {
  assert.equal(checkPythonEntryPoint('def handle(data, ctx):\n    pass\n', 'handle'), null);
  assert.equal(checkPythonEntryPoint('async def infer(data, ctx):\n    pass\n', 'infer'), null);
  assert.equal(checkPythonEntryPoint('from impl import handle\n', 'handle'), null);
  assert.equal(checkPythonEntryPoint('handle = make_handler()\n', 'handle'), null);
  assert.equal(checkPythonEntryPoint('class H(BaseHandler):\n    pass\n', 'handle'), null);
  assert.equal(checkPythonEntryPoint('class H:\n    def initialize(self, c): pass\n    def handle(self, d, c): pass\n', 'handle'), null);
  // A nested def is not a module attribute.
  assert.match(checkPythonEntryPoint('class A:\n    def handle(self): pass\nclass B:\n    pass\n', 'handle')!, /2 classes \(A, B\)/);
  assert.match(checkPythonEntryPoint('x = 1\n', 'handle')!, /no top-level function handle\(\) and no class/);
  assert.match(checkPythonEntryPoint('class H:\n    def handle(self, d, c): pass\n', 'handle')!, /no method initialize/);
  assert.match(checkPythonEntryPoint('def other():\n    def handle(): pass\n', 'handle')!, /no top-level function/);
});

test('Node handlers must export the function in any usual spelling', () => {
  for (const src of [
    'export function handle(b) {}',
    'export async function handle(b) {}',
    'export const handle = async (b) => b;',
    'async function handle() {}\nexport { handle };',
    'exports.handle = function () {};',
    'module.exports.handle = () => 1;',
    'module.exports = { init, handle };',
  ]) {
    assert.equal(hasNodeExport(src, 'handle'), true, src);
  }
  assert.equal(hasNodeExport('function handle() {}\nexport function handler() {}', 'handle'), false);
  assert.equal(hasNodeExport('export const handled = 1;', 'handle'), false);
  // The Node worker's class entry point and a default-exported function are resolvable too.
  assert.equal(hasNodeExport('export default class Model { async handle() {} }', 'handle'), true);
  assert.equal(hasNodeExport('module.exports = class Model {}', 'handle'), true);
  assert.equal(hasNodeExport('export default async function (data, ctx) {}', 'handle'), true);
  assert.equal(hasNodeExport('class Model {}\nmodule.exports = Model;\n', 'handle'), true);
  assert.equal(hasNodeExport('const x = 1;\nmodule.exports = x;\n', 'handle'), false);
});

test('digest files: "<sha256>  <size>  <path>" and "<sha256>  <path>" lines', () => {
  const h = 'a'.repeat(64);
  const { digests, errors } = parseDigestFile(`${h}  12  dir/a b.txt\n${h.toUpperCase()}  *model.pt\n\nbogus line\n`);
  assert.deepEqual(digests.get('dir/a b.txt'), { sha256: h, size: 12, line: 1 });
  assert.deepEqual(digests.get('model.pt'), { sha256: h, line: 2 });
  assert.deepEqual(errors, ['line 4 is not "<sha256>  <size>  <path>"']);
});

test('round trip: archives from createArchive in every format inspect, verify and extract to the same bytes', async () => {
  const { createArchive } = await import('../../src/archive/pack.js');
  const { inspectArchive } = await import('../../src/archive/inspect.js');
  const { extractArchive } = await import('../../src/archive/extract.js');
  const { readFile } = await import('node:fs/promises');
  const model = join(dir, 'rt-model');
  await mkdir(join(model, 'sub'), { recursive: true });
  const files: Record<string, Buffer> = {
    'handler.py': Buffer.from('def handle(data, context):\n    return data\n'),
    'weights.bin': Buffer.from(Array.from({ length: 70000 }, (_, i) => (i * 7919) % 251)),
    'sub/notes.txt': Buffer.from('notes\n'),
  };
  for (const [p, b] of Object.entries(files)) await writeFile(join(model, p), b);
  for (const format of ['default', 'zip-store', 'tgz', 'no-archive'] as const) {
    const created = await createArchive({
      modelName: 'rt',
      handler: 'handler:handle',
      modelPath: model,
      exportPath: join(dir, `rt-${format}`),
      archiveFormat: format,
      modelVersion: '2.0',
    });
    const v = await verifyArchive(created.path);
    assert.deepEqual(v.problems, [], format);
    const info = await inspectArchive(created.path);
    assert.equal(info.modelName, 'rt');
    assert.equal(info.modelVersion, '2.0');
    assert.equal(info.handler, 'handler:handle');
    const out = join(dir, `rt-x-${format}`);
    await extractArchive(created.path, out);
    for (const [p, b] of Object.entries(files)) assert.ok((await readFile(join(out, p))).equals(b), `${format}: ${p}`);
    if (format === 'no-archive') {
      // The digests written by create catch a file edited afterwards.
      await writeFile(join(created.path, 'sub', 'notes.txt'), 'edited\n');
      const tampered = await verifyArchive(created.path);
      assert.deepEqual(
        tampered.problems.map((p) => [p.code, p.path]),
        [['DIGEST_MISMATCH', 'sub/notes.txt']],
      );
    }
  }
});

test("the zip rules verify enforces are the ones Java's ZipInputStream (MMS, TorchServe) enforces", async () => {
  const { zipCheckClassDir } = await import('../helpers/zip-checkers.js');
  const { run } = await import('../helpers/util.js');
  const classDir = await zipCheckClassDir();
  const java = (...files: string[]) => run('java', ['-Xshare:auto', '-XX:TieredStopAtLevel=1', '-cp', classDir, 'ZipCheck', ...files]);
  // Everything verify passes, Java reads.
  const good = await java(paths.mms, paths.torchserve, paths['torchserve-store'], paths.infozip, paths['with-digests'], paths.node);
  assert.equal(good.code, 0, good.stdout);
  // What verify rejects for structural reasons, Java rejects too, for the reason verify gives.
  for (const [shape, why] of [
    ['stored-dd', /only DEFLATED entries can have EXT descriptor/],
    ['cp437', /malformed input/],
    ['bad-crc', /invalid entry CRC/],
  ] as const) {
    const r = await java(paths[shape]);
    assert.equal(r.code, 1, shape);
    assert.match(r.stdout, why);
  }
});

test('zip names with ./ or doubled slashes are found where the servers unzip them (no false "missing")', async () => {
  const zipPath = join(dir, 'dot-slash.mar');
  const made = await run('python3', [
    '-c',
    `
import sys, zipfile
with zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED) as z:
    z.writestr('./', '')
    z.writestr('./model_handler.py', 'def handle(data, context):\\n    return data\\n')
    z.writestr('./MAR-INF/MANIFEST.json', '{"runtime": "python", "model": {"modelName": "d", "handler": "model_handler:handle", "serializedFile": "w.bin"}, "modelServerVersion": "1.0", "implementationVersion": "1.0", "specificationVersion": "1.0"}')
    z.writestr('data//w.bin', 'w')
    z.writestr('w.bin', 'w')
`,
    zipPath,
  ]);
  assert.equal(made.code, 0, made.stderr);
  const r = await verifyArchive(zipPath);
  assert.deepEqual(r.problems, [], JSON.stringify(r.problems));
  assert.equal(r.manifestKind, 'mar-inf');
});
