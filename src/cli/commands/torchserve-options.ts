/**
 * How TorchServe's flags (ts/arg_parser.py) become `model-server start` options in TorchServe's dialect: for the
 * `torchserve` command (torchserve-main.ts) and for the early entry that spawns its startup workers before the
 * command loads (early-spawn.ts). No commander here: the early entry runs before it is loaded.
 */

import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { StartOptions } from './start.js';

export interface TorchServeFlags {
  start?: boolean;
  stop?: boolean;
  foreground?: boolean;
  tsConfig?: string;
  modelStore?: string;
  workflowStore?: string;
  models?: string[];
  logConfig?: string;
  cppLogConfig?: string;
  configSnapshots?: boolean;
  pluginsPath?: string;
  disableTokenAuth?: boolean;
  enableModelApi?: boolean;
}

/** TorchServe keeps its pid file in the temp dir, so `torchserve --stop` needs no other flag. */
export const TORCHSERVE_PID_FILE = join(tmpdir(), '.model_server.pid');

/** What every `torchserve` command line runs with: TorchServe's dialect, pid file and stop command. */
export function torchServeOptions(flags: TorchServeFlags): StartOptions {
  return {
    dialect: 'torchserve',
    pidFile: TORCHSERVE_PID_FILE,
    stopCommand: 'torchserve --stop',
    ...(flags.foreground ? { foreground: true } : {}),
  };
}

/** The start options of a `torchserve` command line that starts the server (not --stop). */
export function torchServeStartOptions(flags: TorchServeFlags): StartOptions {
  return {
    ...torchServeOptions(flags),
    start: true,
    ...(flags.tsConfig !== undefined ? { config: flags.tsConfig } : {}),
    ...(flags.modelStore !== undefined ? { modelStore: flags.modelStore } : {}),
    ...(flags.models !== undefined ? { models: flags.models } : {}),
    ...(flags.configSnapshots === false ? { noConfigSnapshots: true } : {}),
    ...(flags.disableTokenAuth ? { disableTokenAuth: true } : {}),
    ...(flags.enableModelApi ? { enableModelApi: true } : {}),
  };
}
