#!/usr/bin/env node
// Build step: the CLIs' entry points (bin/*.js load them) bundled from tsc's output into dist/bundle with esbuild:
// one file per entry and shared chunks (code splitting keeps every lazy import lazy), npm packages left as imports.
// Node loads a few chunks instead of ~100 ESM modules on a cold start (docs/ARCHITECTURE.md, "The CLIs' bundle").
// The Node worker (runtime/node/worker.ts, launchers.ts NODE_WORKER_SCRIPT) is bundled on its own, as one file.
// dist/src stays what the library exports and the tests import. The source map (linked) maps back to src/*.ts
// through tsc's maps; the launchers enable it only for --debug / MAR_DEBUG=1.
import { renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const ENTRIES = ['early-spawn', 'server-main', 'archiver-main', 'torchserve-main', 'entrypoint-main'];
const out = join(root, 'dist', 'bundle');
const tmp = `${out}.${process.pid}.tmp`;

const common = {
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  sourcemap: 'linked',
  sourcesContent: false,
  logLevel: 'warning',
};
// npm packages stay imports, except those every CLI start loads: commander (the command line) is CommonJS in 9 files,
// and importing it cost 8-10 ms of each start, where bundled it costs ~1 ms. The package stays a dependency.
const BUNDLED_PACKAGES = new Set(['commander']);
const packagesExternal = {
  name: 'packages-external',
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, (args) =>
      BUNDLED_PACKAGES.has(args.path) || args.path.startsWith('node:') ? undefined : { path: args.path, external: true },
    );
  },
};
await build({
  ...common,
  packages: undefined,
  plugins: [packagesExternal],
  // commander's require('node:events') and the like, from an ES module
  banner: { js: "import { createRequire as __marRequire } from 'node:module'; const require = __marRequire(import.meta.url);" },
  entryPoints: ENTRIES.map((name) => join(root, 'dist', 'src', 'cli', `${name}.js`)),
  outdir: tmp,
  splitting: true,
});
await build({ ...common, entryPoints: [join(root, 'dist', 'src', 'runtime', 'node', 'worker.js')], outfile: join(tmp, 'node-worker.js') });
rmSync(out, { recursive: true, force: true });
renameSync(tmp, out);
