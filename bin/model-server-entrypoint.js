#!/usr/bin/env node
// The CLI runs from its bundle (scripts/build-bundle.js); with --debug its source map names src/*.ts in stack traces.
const argv = process.argv.slice(2);
if (argv.includes('--debug') || process.env.MAR_DEBUG === '1') process.setSourceMapsEnabled(true);
// The startup models' workers are spawned first, before the CLI's and the server's modules load.
const { earlySpawn } = await import('../dist/bundle/early-spawn.js');
await earlySpawn(argv, 'entrypoint');
const { main } = await import('../dist/bundle/entrypoint-main.js');
process.exitCode = await main(argv);
