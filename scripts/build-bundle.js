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
await build({
  ...common,
  entryPoints: ENTRIES.map((name) => join(root, 'dist', 'src', 'cli', `${name}.js`)),
  outdir: tmp,
  splitting: true,
});
await build({ ...common, entryPoints: [join(root, 'dist', 'src', 'runtime', 'node', 'worker.js')], outfile: join(tmp, 'node-worker.js') });
rmSync(out, { recursive: true, force: true });
renameSync(tmp, out);
