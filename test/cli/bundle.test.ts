/**
 * The CLIs run from their esbuild bundle (scripts/build-bundle.js, dist/bundle/<cli>.cjs) compiled with its V8 code
 * cache (bin/launch.js): every launcher starts, the cache is one this node accepts, a cache that does not fit the
 * bundle only costs the parse, and with --debug (or MAR_DEBUG=1) a stack trace still names our TypeScript sources
 * through the bundle's source map.
 */

import assert from 'node:assert/strict';
import { copyFile, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { packagePath, TOOL_VERSION } from '../../src/util/package-info.js';
import { run, SERVER_BIN, server, tempDir } from '../helpers/util.js';

const LAUNCHER = packagePath('bin', 'launch.js');
const BUNDLE = packagePath('dist', 'bundle', 'model-server.cjs');

/** What V8 made of the cache when a fresh node compiled `bundle` through the launcher: "false" = accepted. */
async function cacheVerdict(launcher: string, bundle: string): Promise<string> {
  const code = `const r = require(${JSON.stringify(launcher)}).compileBundle(${JSON.stringify(bundle)}, true); console.log(String(r.script.cachedDataRejected));`;
  const r = await run(process.execPath, ['-e', code]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim();
}

test('every launcher runs its bundled CLI', async () => {
  for (const name of ['model-server', 'model-archiver', 'torchserve', 'model-server-entrypoint']) {
    const r = await run(process.execPath, [join(SERVER_BIN, '..', `${name}.js`), '--help']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^Usage: ${name} `));
  }
  const version = await run(process.execPath, [SERVER_BIN, '--version']);
  assert.equal(version.stdout.trim(), TOOL_VERSION);
});

test("the build's code cache is the bundle's, and this node accepts it", async () => {
  assert.equal(await cacheVerdict(LAUNCHER, BUNDLE), 'false');
});

test('a code cache made from another bundle, or damaged, is not used: the CLI only parses its bundle', async (t) => {
  // a copy of the package's layout (the launcher finds dist/bundle from bin/, our modules the root from package.json)
  const root = await tempDir(t);
  await mkdir(join(root, 'bin'));
  await mkdir(join(root, 'dist', 'bundle'), { recursive: true });
  for (const f of ['launch.js', 'model-server.js', 'package.json']) await copyFile(packagePath('bin', f), join(root, 'bin', f));
  await copyFile(packagePath('package.json'), join(root, 'package.json'));
  for (const d of ['schemas', 'node_modules']) await symlink(packagePath(d), join(root, d));
  const bundle = join(root, 'dist', 'bundle', 'model-server.cjs');
  const cache = await readFile(`${BUNDLE}.cache`);
  const head = cache.indexOf(10) + 1;
  for (const [what, bundleText, cacheBytes] of [
    // the bundle changed after the build (one character, same length): the fingerprint no longer matches
    ['another bundle', (await readFile(BUNDLE, 'utf8')).replace('Usage', 'usage'), cache],
    // the bundle's own fingerprint, then bytes V8 refuses
    ['damaged', await readFile(BUNDLE, 'utf8'), Buffer.concat([cache.subarray(0, head), Buffer.alloc(4096, 7)])],
  ] as const) {
    await writeFile(bundle, bundleText);
    await writeFile(`${bundle}.cache`, cacheBytes);
    const version = await run(process.execPath, [join(root, 'bin', 'model-server.js'), '--version']);
    assert.equal(version.code, 0, `${what}: ${version.stderr}`);
    assert.equal(version.stdout.trim(), TOOL_VERSION, what);
    assert.equal(version.stderr, '', what);
    assert.equal(await cacheVerdict(join(root, 'bin', 'launch.js'), bundle), what === 'damaged' ? 'true' : 'undefined', what);
  }
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
