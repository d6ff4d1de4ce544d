/**
 * The `torchserve` command: TorchServe's own flags (ts/arg_parser.py) over `model-server start` in TorchServe's
 * dialect, so a deployment's start and stop commands run unchanged. docs/torchserve.md lists what each flag does here.
 */

import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command } from 'commander';
import { MarError } from '../errors.js';
import { loadConfig } from '../server/config.js';
import { TOOL_VERSION } from '../util/package-info.js';
import { runStart, type StartOptions } from './commands/start.js';
import { type TorchServeFlags, torchServeOptions, torchServeStartOptions } from './commands/torchserve-options.js';
import { discardEarlySpawn } from './early-spawn.js';
import { runProgram } from './run.js';

function note(message: string): void {
  process.stderr.write(`torchserve: ${message}\n`);
}

async function run(flags: TorchServeFlags): Promise<void> {
  if (flags.start && flags.stop) throw new MarError('USAGE', 'argument --stop: not allowed with argument --start');
  if (flags.pluginsPath !== undefined) {
    throw new MarError(
      'USAGE',
      '--plugins-path is not supported: TorchServe plugins are Java classes and model-server runs no JVM (docs/torchserve.md)',
    );
  }
  if (flags.stop) {
    return runStart({ ...torchServeOptions(flags), stop: true });
  }
  if (flags.logConfig !== undefined) note('--log-config is ignored: model-server logs to stdout (log4j2 files do not apply)');
  if (flags.cppLogConfig !== undefined) note('--cpp-log-config is ignored: model-server has no C++ backend');
  if (flags.workflowStore !== undefined) note('--workflow-store is ignored: workflows are not supported');
  const o: StartOptions = torchServeStartOptions(flags);
  // TorchServe refuses to start without a model store (from the flag or the config file)
  if (o.modelStore === undefined) {
    const store = loadConfig({ dialect: 'torchserve', ...(o.config !== undefined ? { configFile: o.config } : {}) }).modelStore;
    if (store === null) throw new MarError('USAGE', 'Missing mandatory parameter --model-store');
  }
  if (!o.foreground) {
    // TorchServe's logs/ directory in the working directory
    const logs = resolve('logs');
    mkdirSync(logs, { recursive: true });
    o.logFile = join(logs, 'model_server.log');
  }
  return runStart(o);
}

export function buildTorchServeProgram(): Command {
  return new Command('torchserve')
    .description("TorchServe's command line, served by model-server in TorchServe's dialect (see docs/torchserve.md)")
    .version(`model-server ${TOOL_VERSION} (TorchServe dialect)`, '-v, --version', 'print the version')
    .option('--start', 'start the model server in the background (the default)')
    .option('--stop', 'stop the model server')
    .option('--foreground', 'run the model server in the foreground')
    .option('--ts-config <file>', 'configuration file for the model server (config.properties)')
    .option('--model-store <dir>', 'model store location from where local or default models can be loaded')
    .option('--workflow-store <dir>', 'ignored: workflows are not supported')
    .option('--models <model...>', 'models to load at startup: [model_name=]model_location ..., or ALL')
    .option('--log-config <file>', 'ignored: log4j2 configuration')
    .option('--cpp-log-config <file>', 'ignored: C++ backend log configuration')
    .option('--ncs, --no-config-snapshots', 'do not write config snapshots')
    .option('--ppath, --plugins-path <dir>', 'not supported (Java plugins)')
    .option('--dt, --disable-token-auth', 'disable token authorization')
    .option('--enable-model-api', 'enable the model control APIs (register, unregister)')
    .option('--debug', 'print stack traces on errors')
    .action((flags: TorchServeFlags) => run(flags));
}

export async function main(argv: readonly string[]): Promise<number> {
  try {
    return await runProgram(buildTorchServeProgram(), argv);
  } finally {
    // workers the early entry spawned for a command line the CLI then read otherwise (or refused)
    await discardEarlySpawn();
  }
}
