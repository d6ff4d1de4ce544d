#!/usr/bin/env node
// The CLI runs from its bundle (scripts/build-bundle.js); with --debug its source map names src/*.ts in stack traces.
const argv = process.argv.slice(2);
if (argv.includes('--debug') || process.env.MAR_DEBUG === '1') process.setSourceMapsEnabled(true);
const { main } = await import('../dist/bundle/torchserve-main.js');
process.exitCode = await main(argv);
