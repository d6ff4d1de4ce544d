import { Command } from 'commander';
import { TOOL_VERSION } from '../util/package-info.js';
import { registerCache } from './commands/cache.js';
import { registerPredict } from './commands/predict.js';
import { registerStart, rewriteMmsArgs } from './commands/start.js';
import { discardEarlySpawn } from './early-spawn.js';
import { runProgram } from './run.js';

export function buildServerProgram(): Command {
  const program = new Command('model-server')
    .description('Run model archives: local inference and an MMS-compatible model server')
    .version(TOOL_VERSION, '-V, --version', 'print the model-server version')
    .option('--debug', 'print stack traces on errors');
  registerPredict(program);
  registerStart(program);
  registerCache(program);
  return program;
}

export async function main(argv: readonly string[]): Promise<number> {
  try {
    return await runProgram(buildServerProgram(), rewriteMmsArgs(argv));
  } finally {
    // workers the early entry spawned for a command line the CLI then read otherwise (or refused)
    await discardEarlySpawn();
  }
}
