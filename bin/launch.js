'use strict';
// What every bin/ launcher does: the CLI runs from its one-file CommonJS bundle (dist/bundle/<cli>.cjs,
// scripts/build-bundle.js), compiled with the V8 code cache the build wrote beside it, so a start neither loads Node's
// ES module loader nor parses the bundle (bin/ is CommonJS for the same reason: bin/package.json). A cache that does
// not belong to this bundle, or that this node refuses (another version, other V8 flags), only costs the parse.
// With --debug or MAR_DEBUG=1 (or node's --enable-source-maps) the bundle is required the usual way with source
// maps on, so stack traces name src/*.ts. A CLI that starts workers has them spawned first, before its command
// runs (cli/early-spawn.ts).
const { readFileSync, renameSync, writeFileSync } = require('node:fs');
const { createHash } = require('node:crypto');
const Module = require('node:module');
const { dirname, join } = require('node:path');
const vm = require('node:vm');

const BUNDLE_DIR = join(__dirname, '..', 'dist', 'bundle');

/** The first line of a code cache file: which bundle it was made from. */
const fingerprint = (source) => `sha256:${createHash('sha256').update(source).digest('hex')}\n`;

/** Compiles and runs a CommonJS bundle as require() would; its V8 code cache is used when it was made from this bundle. */
function compileBundle(file, useCache) {
  const source = readFileSync(file);
  let cachedData;
  if (useCache) {
    try {
      const cache = readFileSync(`${file}.cache`);
      const head = fingerprint(source);
      if (cache.toString('latin1', 0, head.length) === head) cachedData = cache.subarray(head.length);
    } catch {
      // no cache: compiled from source
    }
  }
  // the build leaves no import() in the bundle (its packages are require()d), so the script needs no module loader
  const script = new vm.Script(Module.wrap(source.toString('utf8')), { filename: file, cachedData });
  const module = { exports: {}, id: file, filename: file, loaded: false };
  script.runInThisContext().call(module.exports, module.exports, Module.createRequire(file), module, file, dirname(file));
  module.loaded = true;
  return { exports: module.exports, script, source };
}

/** The build's step: the code cache of a bundle, written beside it (the build runs this in a fresh node). */
function writeCodeCache(file) {
  const { script, source } = compileBundle(file, false);
  const tmp = `${file}.cache.${process.pid}.tmp`;
  writeFileSync(tmp, Buffer.concat([Buffer.from(fingerprint(source), 'latin1'), script.createCachedData()]));
  renameSync(tmp, `${file}.cache`);
}

/** Runs CLI `name` (dist/bundle/<name>.cjs); `early`: its early worker spawn (cli/early-spawn.ts) runs first. */
async function launch(name, early) {
  const argv = process.argv.slice(2);
  const file = join(BUNDLE_DIR, `${name}.cjs`);
  let cli;
  // Node applies source maps to what require() compiles, not to a vm.Script: with them on (--enable-source-maps
  // too), the bundle is required
  if (argv.includes('--debug') || process.env.MAR_DEBUG === '1' || process.sourceMapsEnabled) {
    process.setSourceMapsEnabled(true);
    cli = require(file);
  } else {
    cli = compileBundle(file, true).exports;
  }
  if (early !== undefined) await cli.earlySpawn(argv, early);
  process.exitCode = await cli.main(argv);
}

module.exports = { launch, compileBundle };

if (require.main === module && process.argv[2] === '--write-code-cache') writeCodeCache(process.argv[3]);
