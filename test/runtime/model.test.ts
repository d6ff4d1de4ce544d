/** openModel: archive kinds, manifests, overrides, refusals, and how it uses the persistent extraction cache. */

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readdir, stat, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { MarError } from '../../src/errors.js';
import { listCache } from '../../src/runtime/cache/eviction.js';
import { openModel } from '../../src/runtime/model.js';
import { WorkerProcess } from '../../src/runtime/worker-process.js';
import { packagePath } from '../../src/util/package-info.js';
import { archiver, run, tempDir } from '../helpers/util.js';

const MANIFEST = (extra: Record<string, unknown> = {}, model: Record<string, unknown> = {}) =>
  JSON.stringify({
    createdOn: '24/11/2026 10:00:00',
    runtime: 'python',
    model: { modelName: 'squeeze', handler: 'my_handler:handle', modelVersion: '1.2', ...model },
    archiverVersion: '0.1.0',
    ...extra,
  });

/** A model directory with a manifest and a handler that answers "hello from <model name>". */
async function modelDir(t: TestContext, opts: { manifest?: string | null; legacy?: string; config?: string } = {}): Promise<string> {
  const dir = join(await tempDir(t), 'squeezenet_v1.1');
  await mkdir(join(dir, 'MAR-INF'), { recursive: true });
  if (opts.manifest !== null) await writeFile(join(dir, 'MAR-INF', 'MANIFEST.json'), opts.manifest ?? MANIFEST());
  if (opts.legacy) await writeFile(join(dir, 'MANIFEST.json'), opts.legacy);
  if (opts.config) await writeFile(join(dir, 'model-config.yaml'), opts.config);
  await writeFile(
    join(dir, 'my_handler.py'),
    'def handle(data, context):\n    if data is None:\n        return None\n    return ["hello from " + context.model_name] * len(data)\n',
  );
  await writeFile(join(dir, 'weights.bin'), Buffer.alloc(1024, 1));
  return dir;
}

/** The cache's entry directories. */
async function cacheEntries(cacheDir: string): Promise<string[]> {
  return (await listCache(cacheDir)).map((e) => e.dir);
}

/** A .mar written by Python's zipfile, the way the reference archiver does. */
async function zipDir(dir: string, out: string): Promise<string> {
  const script =
    'import os, sys, zipfile\n' +
    'src, out = sys.argv[1], sys.argv[2]\n' +
    'with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:\n' +
    '    for root, dirs, files in os.walk(src):\n' +
    '        for f in sorted(files):\n' +
    '            p = os.path.join(root, f)\n' +
    '            z.write(p, os.path.relpath(p, src))\n';
  const r = await run('python3', ['-c', script, dir, out]);
  assert.equal(r.code, 0, r.stderr);
  return out;
}

test('a directory is used in place: manifest facts, name, handler, version, runtime', async (t) => {
  const dir = await modelDir(t);
  const m = await openModel(dir);
  assert.deepEqual(
    [m.name, m.dir, m.handler, m.entry.module, m.entry.functionName, m.runtime, m.manifestKind, m.modelVersion, m.source, m.config],
    ['squeeze', dir, 'my_handler:handle', 'my_handler', 'handle', 'python', 'mar-inf', '1.2', dir, null],
  );
  await m.release();
  await m.release();
  assert.ok(existsSync(dir), 'a directory is never deleted');
});

test('caller overrides win over the manifest; python2 and LSP are refused', async (t) => {
  const dir = await modelDir(t);
  const m = await openModel(dir, { modelName: 'other', handler: 'my_handler.py:handle', runtime: 'python3' });
  assert.deepEqual([m.name, m.handler, m.entry.module, m.runtime], ['other', 'my_handler.py:handle', 'my_handler', 'python3']);
  await assert.rejects(
    openModel(dir, { runtime: 'python2' }),
    (e: unknown) =>
      e instanceof MarError && e.code === 'RUNTIME_UNSUPPORTED' && /^runtime python2 is not supported: .*use python3/.test(e.message),
  );
  const py2 = await modelDir(t, { manifest: MANIFEST({ runtime: 'python2' }) });
  await assert.rejects(openModel(py2), (e: unknown) => e instanceof MarError && e.code === 'RUNTIME_UNSUPPORTED');
  await assert.rejects(openModel(dir, { runtime: 'LSP' }), (e: unknown) => e instanceof MarError && e.code === 'RUNTIME_UNSUPPORTED');
});

test('a missing handler module fails early and says where it looked', async (t) => {
  const dir = await modelDir(t);
  await assert.rejects(
    openModel(dir, { handler: 'nope:handle' }),
    (e: unknown) =>
      e instanceof MarError &&
      e.code === 'HANDLER_NOT_FOUND' &&
      /handler module nope not found .*nope\.py, nope\/__init__\.py/.test(e.message),
  );
  // TorchServe's built-ins run in our Python worker (which says at load what it lacks), except the TorchServe-only ones.
  const builtin = await openModel(dir, { handler: 'image_classifier' });
  assert.equal(builtin.handler, 'image_classifier');
  await builtin.release();
  await assert.rejects(
    openModel(dir, { handler: 'vllm_handler' }),
    (e: unknown) => e instanceof MarError && /TorchServe built-in handler that only TorchServe ships/.test(e.message),
  );
  await assert.rejects(
    openModel(dir, { runtime: 'node' }),
    (e: unknown) => e instanceof MarError && /my_handler\.js, my_handler\.mjs, my_handler\.cjs/.test(e.message),
  );
});

test('no manifest: a handler is required, the name defaults to the directory name', async (t) => {
  const dir = await modelDir(t, { manifest: null });
  await assert.rejects(
    openModel(dir),
    (e: unknown) => e instanceof MarError && e.code === 'HANDLER_NOT_FOUND' && /pass --handler/.test(e.message),
  );
  const m = await openModel(dir, { handler: 'my_handler' });
  assert.deepEqual([m.name, m.manifest, m.manifestKind, m.runtime], ['squeezenet_v1.1', null, 'none', 'python']);
});

test('a legacy root MANIFEST.json is migrated', async (t) => {
  const legacy = JSON.stringify({
    'Model-Archive-Version': 0.2,
    Model: { 'Model-Name': 'old_net', Service: 'my_handler.py' },
    Engine: { MXNet: 1.2 },
  });
  const m = await openModel(await modelDir(t, { manifest: null, legacy }));
  assert.deepEqual(
    [m.name, m.handler, m.manifestKind, m.runtime, m.modelVersion],
    ['old_net', 'my_handler.py', 'legacy', 'python', 'snapshot'],
  );
});

test('model.configFile is parsed; a broken one is CONFIG_INVALID', async (t) => {
  const good = await modelDir(t, {
    manifest: MANIFEST({}, { configFile: 'model-config.yaml' }),
    config: 'batchSize: 4\nmaxBatchDelay: 50\nhandler:\n  threshold: 0.5\n',
  });
  assert.deepEqual((await openModel(good)).config, { batchSize: 4, maxBatchDelay: 50, handler: { threshold: 0.5 } });
  const bad = await modelDir(t, { manifest: MANIFEST({}, { configFile: 'model-config.yaml' }), config: 'batchSize: four\n' });
  await assert.rejects(openModel(bad), (e: unknown) => e instanceof MarError && e.code === 'CONFIG_INVALID');
  const missing = await modelDir(t, { manifest: MANIFEST({}, { configFile: 'model-config.yaml' }) });
  await assert.rejects(
    openModel(missing),
    (e: unknown) => e instanceof MarError && e.code === 'CONFIG_INVALID' && /missing/.test(e.message),
  );
});

test('a .mar from Python zipfile is extracted into the cache, shared by concurrent opens, and kept for the next open', async (t) => {
  const work = await tempDir(t);
  const cacheDir = join(work, 'cache');
  const mar = await zipDir(await modelDir(t), join(work, 'squeeze.mar'));
  const [a, b] = await Promise.all([openModel(mar, { cacheDir }), openModel(mar, { cacheDir })]);
  assert.equal(a.dir, b.dir, 'concurrent opens share one extraction');
  assert.ok(a.dir.startsWith(cacheDir));
  assert.deepEqual([a.name, a.manifestKind, a.source], ['squeeze', 'mar-inf', mar]);
  assert.deepEqual((await readdir(a.dir)).sort(), ['MAR-INF', 'my_handler.py', 'weights.bin']);
  assert.equal((await cacheEntries(cacheDir)).length, 1);
  const ino = (await stat(join(a.dir, 'weights.bin'))).ino;

  await a.release();
  assert.ok(existsSync(b.dir), 'still used by b');
  await b.release();
  assert.ok(existsSync(b.dir), 'the extraction outlives its last user: the cache is persistent');
  const c = await openModel(mar, { cacheDir });
  assert.equal(c.dir, b.dir, 'a later open reuses it');
  assert.equal((await stat(join(c.dir, 'weights.bin'))).ino, ino, 'without extracting again');
  await c.release();
  assert.equal((await cacheEntries(cacheDir)).length, 1);
});

test('a model from the cache runs in a real worker', async (t) => {
  const work = await tempDir(t);
  const mar = await zipDir(await modelDir(t), join(work, 'squeeze.mar'));
  const m = await openModel(mar, { cacheDir: join(work, 'cache') });
  t.after(() => m.release());
  const w = await WorkerProcess.start({ id: '1', model: m, batchSize: 1, log: () => {} });
  t.after(() => w.stop());
  const reply = await w.predict([{ requestId: 'r', headers: [], params: [] }], 10_000);
  assert.equal(reply.predictions[0]!.body.toString(), 'hello from squeeze');
});

test('a TorchServe-style .tar.gz (single root directory) opens like the directory', async (t) => {
  const work = await tempDir(t);
  const dir = await modelDir(t);
  const tgz = join(work, 'squeeze.tar.gz');
  const r = await run('tar', ['czf', tgz, '-C', join(dir, '..'), 'squeezenet_v1.1']);
  assert.equal(r.code, 0, r.stderr);
  const m = await openModel(tgz, { cacheDir: join(work, 'cache') });
  assert.deepEqual([m.name, m.handler, m.manifestKind], ['squeeze', 'my_handler:handle', 'mar-inf']);
  assert.ok(existsSync(join(m.dir, 'my_handler.py')));
  await m.release();
});

test('a failed open removes what it extracted; a missing file is INPUT_NOT_FOUND', async (t) => {
  const work = await tempDir(t);
  const cacheDir = join(work, 'cache');
  const mar = await zipDir(await modelDir(t), join(work, 'squeeze.mar'));
  await assert.rejects(
    openModel(mar, { cacheDir, handler: 'absent' }),
    (e: unknown) => e instanceof MarError && e.code === 'HANDLER_NOT_FOUND',
  );
  assert.deepEqual(await cacheEntries(cacheDir), [], 'the cache holds only archives that opened');
  const ok = await openModel(mar, { cacheDir });
  await ok.release();
  await assert.rejects(openModel(mar, { cacheDir, handler: 'absent' }), (e: unknown) => e instanceof MarError);
  const [entry] = await cacheEntries(cacheDir);
  assert.deepEqual(await readdir(join(entry!, 'users')), [], 'an entry cached earlier stays, and this process no longer uses it');
  await assert.rejects(
    openModel(join(work, 'nope.mar'), { cacheDir }),
    (e: unknown) => e instanceof MarError && e.code === 'INPUT_NOT_FOUND',
  );
  await writeFile(join(work, 'junk.mar'), 'this is not an archive');
  await assert.rejects(openModel(join(work, 'junk.mar'), { cacheDir }), (e: unknown) => e instanceof MarError);
  assert.equal((await cacheEntries(cacheDir)).length, 1, 'nothing cached for the junk');
});

test('an entry used by a live process survives eviction; one whose user died does not', async (t) => {
  const work = await tempDir(t);
  const cacheDir = join(work, 'cache');
  const mar = await zipDir(await modelDir(t), join(work, 'squeeze.mar'));
  const m = await openModel(mar, { cacheDir });
  await m.release();
  const users = join(m.dir, '..', 'users');
  // A pid that is certainly dead: a child that has exited.
  const child = spawn(process.execPath, ['-e', '']);
  const deadPid = await new Promise<number>((resolve) => child.on('exit', () => resolve(child.pid!)));
  await writeFile(join(users, 'dead'), JSON.stringify({ pid: deadPid, host: hostname(), boot: null, start: null }));
  await writeFile(join(users, 'live'), JSON.stringify({ pid: process.ppid, host: hostname(), boot: null, start: null }));
  // a tiny cap: everything not in use goes
  const other = await zipDir(await modelDir(t), join(work, 'other.mar'));
  const o = await openModel(other, { cacheDir, cacheMaxSize: { bytes: 1 } });
  await o.release();
  assert.ok(existsSync(m.dir), 'kept: a live process uses it');
  assert.deepEqual((await readdir(users)).sort(), ['live'], "the dead process's marker is dropped");
  await unlink(join(users, 'live'));
  const again = await openModel(other, { cacheDir, cacheMaxSize: { bytes: 1 } });
  await again.release();
  assert.ok(existsSync(again.dir), 'the entry just used stays');
  const evicted = await openModel(await zipDir(await modelDir(t), join(work, 'third.mar')), { cacheDir, cacheMaxSize: { bytes: 1 } });
  await evicted.release();
  assert.ok(!existsSync(m.dir), 'evicted once nobody uses it');
});

test('the default cache follows XDG_CACHE_HOME and is refused when another user could write to it', async (t) => {
  const work = await tempDir(t);
  const mar = await zipDir(await modelDir(t), join(work, 'squeeze.mar'));
  const xdg = join(work, 'xdg');
  await mkdir(join(xdg, 'mar-tools'), { recursive: true });
  await chmod(join(xdg, 'mar-tools'), 0o777);
  const script =
    `import(${JSON.stringify(packagePath('dist', 'src', 'runtime', 'model.js'))})` +
    `.then((m) => m.openModel(${JSON.stringify(mar)})).then((m) => { console.log(m.dir); return m.release(); }, (e) => console.log(e.code, e.message))`;
  const env = { XDG_CACHE_HOME: xdg, MAR_CACHE_DIR: '' };
  const refused = await run(process.execPath, ['-e', script], { env });
  assert.match(refused.stdout, /^OUTPUT_FAILED the model cache .*xdg\/mar-tools is not private to this user/);
  await chmod(join(xdg, 'mar-tools'), 0o700);
  const ok = await run(process.execPath, ['-e', script], { env });
  assert.ok(ok.stdout.startsWith(join(xdg, 'mar-tools', 'models')), ok.stdout + ok.stderr);
});

test('archives made by our model-archiver (python and node runtimes) open and run', async (t) => {
  const work = await tempDir(t);
  const cacheDir = join(work, 'cache');
  const src = join(work, 'jsmodel');
  await mkdir(src);
  // biome-ignore lint/suspicious/noTemplateCurlyInString: the handler's own JavaScript source, written to a file
  await writeFile(join(src, 'model_handler.js'), 'export function handle(d, c) { return d && d.map(() => `js ${c.modelName}`); }\n');
  let r = await archiver([
    'create',
    '--model-name',
    'jsm',
    '--model-path',
    src,
    '--handler',
    'model_handler:handle',
    '--runtime',
    'node',
    '--export-path',
    work,
  ]);
  assert.equal(r.code, 0, r.stderr);
  r = await archiver([
    'create',
    '--model-name',
    'pym',
    '--model-path',
    await modelDir(t),
    '--handler',
    'my_handler:handle',
    '--export-path',
    work,
  ]);
  assert.equal(r.code, 0, r.stderr);
  for (const [file, runtime, expected] of [
    ['jsm.mar', 'node', 'js jsm'],
    ['pym.mar', 'python', 'hello from pym'],
  ] as const) {
    const m = await openModel(join(work, file), { cacheDir });
    t.after(() => m.release());
    assert.equal(m.runtime, runtime);
    const w = await WorkerProcess.start({ id: '1', model: m, batchSize: 1, log: () => {} });
    t.after(() => w.stop());
    const reply = await w.predict([{ requestId: 'r', headers: [], params: [] }], 10_000);
    assert.equal(reply.predictions[0]!.body.toString(), expected);
  }
});

test('a process that exits without release() leaves its extraction for the next one, and no marker pinning it', async (t) => {
  const work = await tempDir(t);
  const cacheDir = join(work, 'cache');
  const mar = await zipDir(await modelDir(t), join(work, 'squeeze.mar'));
  const script =
    `import(${JSON.stringify(packagePath('dist', 'src', 'runtime', 'model.js'))})` +
    `.then((m) => m.openModel(${JSON.stringify(mar)}, { cacheDir: ${JSON.stringify(cacheDir)} })).then((m) => { console.log(m.dir); process.exit(0); })`;
  const r = await run(process.execPath, ['-e', script]);
  const dir = r.stdout.trim();
  assert.ok(dir.startsWith(cacheDir), r.stdout + r.stderr);
  assert.deepEqual(await readdir(join(dir, '..', 'users')), [], 'its marker was removed on exit');
  const again = await openModel(mar, { cacheDir });
  t.after(() => again.release());
  assert.equal(again.dir, dir);
});
