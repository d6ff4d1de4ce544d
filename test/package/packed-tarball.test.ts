/**
 * The package as a user gets it: `npm pack` of this checkout, unpacked as node_modules/mar-tools in a temp project,
 * then used the way a CI build script uses it (ESM import of the package name, TypeScript against its declarations,
 * the CLIs from node_modules/.bin).
 *
 * No network and no `npm install`: the temp project's dependencies are symlinks to this repository's node_modules
 * (Node resolves a symlinked package from its real path, so their own dependencies resolve there too). `npm pack`
 * runs with --ignore-scripts: `prepare` would rebuild dist/ under the other test files; pretest built it already.
 */

import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { x as untar } from 'tar';
import { packagePath } from '../../src/util/package-info.js';
import { FIXTURES, run } from '../helpers/util.js';

const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const TSC = packagePath('node_modules', 'typescript', 'bin', 'tsc');

let root = '';
/** The temp project: package.json, node_modules/mar-tools (the unpacked tarball) and linked dependencies. */
let project = '';
/** Paths inside the tarball, as `npm pack` listed them. */
let packed: string[] = [];

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'mar-pack-'));
  const r = await run(NPM, ['pack', '--ignore-scripts', '--json', '--pack-destination', root], { cwd: packagePath() });
  assert.equal(r.code, 0, r.stderr);
  const [info] = JSON.parse(r.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
  packed = info!.files.map((f) => f.path);

  project = join(root, 'project');
  const installed = join(project, 'node_modules', 'mar-tools');
  await mkdir(installed, { recursive: true });
  await untar({ file: join(root, info!.filename), cwd: installed, strip: 1 });
  await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'ci-build', private: true, type: 'module' }));

  const manifest = JSON.parse(await readFile(join(installed, 'package.json'), 'utf8')) as {
    dependencies: Record<string, string>;
    bin: Record<string, string>;
  };
  for (const dep of [...Object.keys(manifest.dependencies), '@types/node']) {
    const link = join(project, 'node_modules', dep);
    await mkdir(join(link, '..'), { recursive: true });
    await symlink(packagePath('node_modules', dep), link, 'dir');
  }
  // What npm does for `bin` on install.
  await mkdir(join(project, 'node_modules', '.bin'));
  for (const [name, file] of Object.entries(manifest.bin)) {
    await symlink(join('..', 'mar-tools', file), join(project, 'node_modules', '.bin', name));
  }
});

after(() => rm(root, { recursive: true, force: true }));

test("the tarball holds what runs and nothing else: compiled src with declarations, bin and the CLIs' bundle, the Python worker, schema, .proto files, validator, the docs the README links", () => {
  const allowed =
    /^(package\.json|README\.md|LICENSE|CHANGELOG\.md|docs\/[\w-]+\.md|bin\/[\w-]+\.js|bin\/package\.json|dist\/src\/.+\.(js|d\.ts)|dist\/manifest-validator\.cjs|dist\/bundle\/[\w-]+\.js(\.map)?|dist\/bundle\/[\w-]+\.cjs(\.map|\.cache)?|schemas\/[\w.-]+\.json|proto\/([\w-]+\/)*[\w.-]+\.proto|src\/runtime\/python\/(?!tests\/).+\.py)$/;
  assert.deepEqual(
    packed.filter((p) => !allowed.test(p)),
    [],
  );
  for (const p of [
    'dist/src/index.js',
    'dist/src/index.d.ts',
    'dist/src/runtime/node/worker.js',
    'dist/manifest-validator.cjs',
    'bin/package.json',
    'dist/bundle/model-server.cjs',
    'dist/bundle/model-server.cjs.map',
    'dist/bundle/model-server.cjs.cache',
    'dist/bundle/node-worker.cjs',
    'schemas/manifest.schema.json',
    'proto/open_inference_grpc.proto',
    'proto/inference.proto',
    'proto/management.proto',
    'proto/google/rpc/status.proto',
    'src/runtime/python/mms_worker.py',
    'src/runtime/python/_mar_worker/codec.py',
    'src/runtime/python/compat/mms/service.py',
    'bin/model-archiver.js',
    'bin/model-server.js',
    'bin/model-server-entrypoint.js',
    'LICENSE',
    'docs/server.md',
    'docs/errors.md',
  ]) {
    assert.ok(packed.includes(p), `${p} is not in the tarball`);
  }
});

test("a build script imports 'mar-tools': creates, inspects and verifies an archive, runs it, predicts, and gets MarErrors", async () => {
  const script = join(project, 'build.mjs');
  await writeFile(
    script,
    `import { fileURLToPath } from 'node:url';
import { createArchive, inspectArchive, verifyArchive, openModel, ModelRuntime, predict, isMarError, MarError, ERROR_CODES } from 'mar-tools';
const out = fileURLToPath(new URL('./out/', import.meta.url));
const created = await createArchive({ modelName: 'example', handler: 'any_batch_handler:handle', runtime: 'python3', modelPath: ${JSON.stringify(join(FIXTURES, 'models', 'example'))}, exportPath: out });
const report = await inspectArchive(created.path);
const verified = await verifyArchive(created.path);
const model = await openModel(created.path);
const runtime = new ModelRuntime({ model, log: () => {}, onEvent: () => {} });
const started = await runtime.start();
const reply = await runtime.submit({ requestId: 'r1', headers: [], params: [{ name: 'body', contentType: 'text/plain', value: Buffer.from('hi') }] });
await runtime.close();
await model.release();
const outcomes = await predict(created.path, [{ body: 'a', contentType: 'text/plain' }, { body: Buffer.from('b') }]);
let error;
try { await inspectArchive(out + 'missing.mar'); } catch (err) { error = err; }
console.log(JSON.stringify({
  created: { file: created.path.slice(out.length), format: created.format },
  inspected: { modelName: report.modelName, handler: report.handler, runtime: report.runtime },
  verified: { ok: verified.ok, problems: verified.problems },
  predicted: { started: started.started, status: reply.statusCode, body: reply.body.toString() },
  oneShot: outcomes.map((o) => ({ ok: o.ok, status: o.status, body: o.ok ? o.result.body.toString() : o.error.message })),
  error: { isMarError: isMarError(error), instance: error instanceof MarError, code: error.code, known: error.code in ERROR_CODES },
}));
`,
  );
  const r = await run(process.execPath, [script], { cwd: project });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), {
    created: { file: 'example.mar', format: 'default' },
    inspected: { modelName: 'example', handler: 'any_batch_handler:handle', runtime: 'python3' },
    verified: { ok: true, problems: [] },
    predicted: { started: 1, status: 200, body: 'OK' },
    oneShot: [
      { ok: true, status: 200, body: 'OK' },
      { ok: true, status: 200, body: 'OK' },
    ],
    error: { isMarError: true, instance: true, code: 'INPUT_NOT_FOUND', known: true },
  });
});

test("TypeScript (NodeNext) resolves the package's declarations: typed results, wrong options rejected", async () => {
  await writeFile(
    join(project, 'check.ts'),
    `import { createArchive, inspectArchive, startModelServer, verifyArchive, type CreateResult, type InspectReport } from 'mar-tools';
const created: CreateResult = await createArchive({ modelName: 'm', handler: 'h:handle', modelPath: 'model' });
const report: InspectReport = await inspectArchive(created.path);
const ok: boolean = (await verifyArchive(report.path)).ok;
const server = await startModelServer({ properties: { inference_address: 'http://127.0.0.1:0' } });
const urls: string[] = server.listeners.map((l) => l.url);
await server.stop();
// @ts-expect-error modelName is required (were the declarations missing, everything would be any and this line an error)
await createArchive({ handler: 'h:handle' });
export { ok, urls };
`,
  );
  await writeFile(
    join(project, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, types: ['node'] },
      files: ['check.ts'],
    }),
  );
  const r = await run(process.execPath, [TSC, '-p', join(project, 'tsconfig.json')], { cwd: project });
  // Without skipLibCheck, tar's own typings (minizlib) fail against @types/node 20, our pinned line (they name zlib's
  // Zstd classes): a third-party problem a user fixes with skipLibCheck. Nothing in check.ts or in our declarations may fail.
  const errors = r.stdout.split('\n').filter((line) => /error TS\d+/.test(line));
  const ours = errors.filter((line) => !/node_modules\/(?!mar-tools\/)/.test(line.split('(')[0]!));
  assert.deepEqual(ours, [], r.stdout + r.stderr);
  assert.ok(r.code === 0 || errors.length > 0, `tsc failed without a diagnostic: ${r.stdout}${r.stderr}`);
});

test('the CLIs run from node_modules/.bin', async () => {
  for (const [bin, usage] of [
    ['model-archiver', /Usage: model-archiver/],
    ['model-server', /Usage: model-server/],
    // the container image's ENTRYPOINT: npm links it when the image installs the packed tarball
    ['model-server-entrypoint', /Usage: model-server-entrypoint/],
  ] as const) {
    const r = await run(join(project, 'node_modules', '.bin', bin), ['--help'], { cwd: project });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, usage);
  }
});
