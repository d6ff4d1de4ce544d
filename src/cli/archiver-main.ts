import { Command } from 'commander';
import { TOOL_VERSION } from '../util/package-info.js';
import { registerCreate, routeCreateArgs } from './commands/create.js';
import { registerExtract } from './commands/extract.js';
import { registerInspect } from './commands/inspect.js';
import { registerVerify } from './commands/verify.js';
import { runProgram } from './run.js';

export function buildArchiverProgram(): Command {
  const program = new Command('model-archiver')
    .description('Create, inspect, verify and extract model archives (.mar) for MMS and TorchServe')
    // -v/--version is the model version (TorchServe's flag), so the tool's own version gets its own flag.
    .version(TOOL_VERSION, '--archiver-version', 'print the model-archiver version')
    .option('--debug', 'print stack traces on errors');
  registerCreate(program);
  registerInspect(program);
  registerVerify(program);
  registerExtract(program);
  return program;
}

export async function main(argv: readonly string[]): Promise<number> {
  // MMS/TorchServe scripts call `model-archiver --model-name ...` without a subcommand.
  return runProgram(buildArchiverProgram(), routeCreateArgs(argv));
}
