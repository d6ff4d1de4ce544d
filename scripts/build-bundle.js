#!/usr/bin/env node
// Build step: each CLI (bin/*.js load them) bundled from tsc's output into one CommonJS file in dist/bundle with
// esbuild, with V8's code cache for it beside it (bin/launch.js reads both). Why CommonJS, one file per CLI: Node 20's
// ES module loader costs ~0.5 ms per module and ~5 ms to start at all, so the code-split ESM bundle (a cold
// `model-server start` loaded 37 files) spent ~20 ms of a ~105 ms cold start loading modules; one CommonJS file is
// read and compiled once, and with its code cache it is not parsed either (docs/benchmarks.md, session 8). Lazy imports
// of our own modules stay lazy (esbuild wraps each in an init function that runs on first use); npm packages stay
// require()s made where they are used, except those every CLI start loads: commander (CommonJS in 9 files: 8-10 ms
// to import, ~1 ms bundled) and chalk (an ES module). The packages stay dependencies.
// The Node worker (runtime/node/worker.ts, launchers.ts NODE_WORKER_SCRIPT) is bundled on its own, as one CommonJS
// file too (it require()s handlers where it can: handler-loader.ts). dist/src stays what the library exports and the
// tests import. The source maps (linked) map back to src/*.ts through tsc's maps; the launchers enable them only for
// --debug / MAR_DEBUG=1.
import { spawnSync } from 'node:child_process';
import { renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cli = join(root, 'dist', 'src', 'cli');
/** Each launcher's bundle: the command's main and, for those that start servers, the early worker spawn (early-spawn.ts). */
const CLIS = {
  'model-server': { main: 'server-main', early: true },
  torchserve: { main: 'torchserve-main', early: true },
  'model-server-entrypoint': { main: 'entrypoint-main', early: true },
  'model-archiver': { main: 'archiver-main', early: false },
};
const out = join(root, 'dist', 'bundle');
const tmp = `${out}.${process.pid}.tmp`;

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  sourcemap: 'linked',
  sourcesContent: false,
  logLevel: 'warning',
};
// every bundle is CommonJS made from our ES modules: they find the package (package-info.ts) and load files beside them
// from import.meta.url, and they ran in strict mode, as ES modules do (esbuild's CommonJS output does not say it)
const commonJs = {
  format: 'cjs',
  define: { 'import.meta.url': '__marModuleUrl' },
  banner: { js: "'use strict';\nconst __marModuleUrl = require('node:url').pathToFileURL(__filename).href;" },
};
const BUNDLED_PACKAGES = new Set(['commander', 'chalk']);
const packagesExternal = {
  name: 'packages-external',
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, (args) =>
      // `#name`: a bundled package's own import map (chalk's)
      BUNDLED_PACKAGES.has(args.path) || args.path.startsWith('node:') || args.path.startsWith('#')
        ? undefined
        : { path: args.path, external: true },
    );
  },
};
try {
  await buildAll();
} catch (err) {
  rmSync(tmp, { recursive: true, force: true });
  throw err;
}
rmSync(out, { recursive: true, force: true });
renameSync(tmp, out);

async function buildAll() {
  for (const [name, { main, early }] of Object.entries(CLIS)) {
    await build({
      ...common,
      ...commonJs,
      // import() of a package becomes a require() too: the launcher compiles the bundle as a script, which has no
      // ES module loader behind it
      supported: { 'dynamic-import': false },
      plugins: [packagesExternal],
      stdin: {
        contents: `export { main } from './${main}.js';\n${early ? "export { earlySpawn } from './early-spawn.js';\n" : ''}`,
        resolveDir: cli,
        sourcefile: `${name}-entry.js`,
      },
      outfile: join(tmp, `${name}.cjs`),
    });
    // the code cache is made by a fresh node (default flags: V8 refuses a cache made under other flags)
    const made = spawnSync(process.execPath, [join(root, 'bin', 'launch.js'), '--write-code-cache', join(tmp, `${name}.cjs`)], {
      stdio: 'inherit',
      env: { ...process.env, NODE_OPTIONS: '' },
    });
    if (made.status !== 0) throw new Error(`cannot write the code cache of ${name}.cjs`);
  }
  // the Node worker: CommonJS too, so a worker that require()s its handler never starts the ES module loader
  // (handler-loader.ts); import() stays for the handlers require() refuses
  await build({
    ...common,
    ...commonJs,
    packages: 'external',
    entryPoints: [join(root, 'dist', 'src', 'runtime', 'node', 'worker.js')],
    outfile: join(tmp, 'node-worker.cjs'),
  });
}
