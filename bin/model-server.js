#!/usr/bin/env node
// The workers of a start/predict command line are spawned first, before the CLI's and the server's modules load.
import { earlySpawn } from '../dist/src/cli/early-spawn.js';

const argv = process.argv.slice(2);
await earlySpawn(argv);
const { main } = await import('../dist/src/cli/server-main.js');
process.exitCode = await main(argv);
