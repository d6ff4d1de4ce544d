/** Where the handler is: the one lookup, and create, verify and openModel giving the same answer through it. */
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { createArchive } from '../../src/archive/pack.js';
import { verifyArchive } from '../../src/archive/verify.js';
import { MarError } from '../../src/errors.js';
import { parseEntryPoint } from '../../src/handler/entry-point.js';
import { handlerFileCandidates, locateHandler, type PathExists } from '../../src/handler/locate.js';
import { openModel } from '../../src/runtime/model.js';
import { tempDir } from '../helpers/util.js';

const inSet = (...paths: string[]): PathExists => {
  const set = new Set(paths);
  return (p) => set.has(p);
};
const locate = (handler: string, runtime: string, exists: PathExists) => locateHandler(parseEntryPoint(handler), runtime, exists);

test("a handler's own directory first, then the model root (found there: atRoot)", async () => {
  assert.deepEqual(await locate('sub/h:fn', 'python', inSet('sub/h.py', 'h.py')), { kind: 'found', path: 'sub/h.py', atRoot: false });
  assert.deepEqual(await locate('sub/h', 'python', inSet('h/__init__.py')), { kind: 'found', path: 'h/__init__.py', atRoot: true });
  assert.deepEqual(await locate('./h', 'python', inSet('h.py')), { kind: 'found', path: 'h.py', atRoot: false });
  assert.deepEqual(await locate('pkg.h', 'python3', inSet('pkg/h/__init__.py')), {
    kind: 'found',
    path: 'pkg/h/__init__.py',
    atRoot: false,
  });
  assert.deepEqual(await locate('sub/h', 'python', inSet()), {
    kind: 'missing',
    looked: ['sub/h.py', 'sub/h/__init__.py', 'h.py', 'h/__init__.py'],
  });
  assert.deepEqual(await locate('h', 'node', inSet('h.cjs')), { kind: 'found', path: 'h.cjs', atRoot: false });
  assert.deepEqual(await locate('lib/h.js:run', 'node', inSet()), {
    kind: 'missing',
    looked: ['lib/h.js', 'lib/h.mjs', 'lib/h.cjs', 'h.js', 'h.mjs', 'h.cjs'],
  });
});

test('an absolute handler directory is looked in alone; the existence check may be async', async () => {
  const asyncSet =
    (...paths: string[]): PathExists =>
    async (p) =>
      paths.includes(p);
  assert.deepEqual(await locate('/opt/handlers/h', 'python', asyncSet('/opt/handlers/h.py')), {
    kind: 'found',
    path: '/opt/handlers/h.py',
    atRoot: false,
  });
  assert.deepEqual(await locate('/opt/handlers/h', 'python', asyncSet('h.py')), {
    kind: 'missing',
    looked: ['/opt/handlers/h.py', '/opt/handlers/h/__init__.py'],
  });
});

test('TorchServe built-ins: only for Python runtimes and only when the model lacks the module; LSP handlers are not source', async () => {
  assert.deepEqual(await locate('image_classifier', 'python', inSet()), {
    kind: 'builtin',
    builtin: { name: 'image_classifier', className: 'ImageClassifier', needs: ['torch', 'torchvision', 'PIL'] },
    looked: ['image_classifier.py', 'image_classifier/__init__.py'],
  });
  // Ours runs every one TorchServe documents except its DALI, vLLM and TensorRT-LLM handlers.
  const vllm = await locate('vllm_handler', 'python', inSet());
  assert.equal(vllm.kind === 'builtin' && vllm.builtin.className, null);
  assert.deepEqual(await locate('image_classifier', 'python3', inSet('image_classifier.py')), {
    kind: 'found',
    path: 'image_classifier.py',
    atRoot: false,
  });
  assert.equal((await locate('image_classifier', 'node', inSet())).kind, 'missing');
  assert.equal((await locate('sub/image_classifier', 'python', inSet())).kind, 'missing');
  assert.deepEqual(await locate('libhandler.so', 'LSP', inSet()), { kind: 'not-source' });
});

test("a --handler naming a file on disk (TorchServe): as given with a source extension, else with the runtime's", () => {
  assert.deepEqual(handlerFileCandidates('code/h.py', 'node'), ['code/h.py']);
  assert.deepEqual(handlerFileCandidates('code/h', 'python2'), ['code/h.py']);
  assert.deepEqual(handlerFileCandidates('code/h', 'node'), ['code/h.js', 'code/h.mjs', 'code/h.cjs']);
});

/** A model dir with a manifest naming `handler`, and the files given. */
async function model(t: TestContext, handler: string, files: Record<string, string>): Promise<string> {
  const dir = join(await tempDir(t), 'm');
  await mkdir(join(dir, 'MAR-INF'), { recursive: true });
  await writeFile(join(dir, 'MAR-INF', 'MANIFEST.json'), JSON.stringify({ runtime: 'python', model: { modelName: 'm', handler } }));
  for (const [path, text] of Object.entries(files)) {
    await mkdir(join(dir, path, '..'), { recursive: true });
    await writeFile(join(dir, path), text);
  }
  return dir;
}

const HANDLER = 'def handle(data, context):\n    return data\n';

test('create, verify and openModel agree: a root fallback is found by all three, an absolute dir only there', async (t) => {
  const fallback = await model(t, 'sub/h', { 'h.py': HANDLER });
  assert.deepEqual((await verifyArchive(fallback)).problems, []);
  const opened = await openModel(fallback);
  await opened.release();
  const out = await tempDir(t);
  const created = await createArchive({ modelName: 'm', handler: 'sub/h', modelPath: fallback, exportPath: out });
  assert.equal(created.manifest.model.handler, 'sub/h', 'written as given: the runtime finds the root h.py');

  const elsewhere = join(await tempDir(t), 'handlers');
  const absolute = await model(t, `${elsewhere}/h`, { 'h.py': HANDLER });
  assert.deepEqual(
    (await verifyArchive(absolute)).problems.map((p) => p.message),
    [`handler module "h" is not in the archive (looked for ${elsewhere}/h.py, ${elsewhere}/h/__init__.py); add it or fix model.handler`],
  );
  await assert.rejects(openModel(absolute), (e: unknown) => e instanceof MarError && e.code === 'HANDLER_NOT_FOUND');
  await assert.rejects(
    createArchive({ modelName: 'a', handler: `${elsewhere}/h`, modelPath: absolute, exportPath: out }),
    (e: unknown) => e instanceof MarError && e.code === 'HANDLER_NOT_FOUND',
  );
  // ...and where the absolute dir holds it, the model loads
  await mkdir(elsewhere);
  await writeFile(join(elsewhere, 'h.py'), HANDLER);
  const loaded = await openModel(absolute);
  await loaded.release();
});
