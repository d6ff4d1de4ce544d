#!/usr/bin/env node
// The CLI runs from its bundle (scripts/build-bundle.js); with --debug its source map names src/*.ts in stack traces.
const argv = process.argv.slice(2);
if (argv.includes('--debug') || process.env.MAR_DEBUG === '1') process.setSourceMapsEnabled(true);
// The workers of a --foreground command line are spawned first, before the CLI's and the server's modules load.
const { earlySpawn } = await import('../dist/bundle/early-spawn.js');
await earlySpawn(argv, 'torchserve');
const { main } = await import('../dist/bundle/torchserve-main.js');
process.exitCode = await main(argv);
