/**
 * What a registered model's workers get besides its serving options: the startup timeout
 * (default_startup_timeout, or the register call's startup_timeout) and, with install_py_dep_per_model, the
 * directory of its installed Python requirements on their PYTHONPATH.
 */

import { delimiter } from 'node:path';
import { handlerLanguage } from '../handler/runtimes.js';
import type { OpenedModel } from '../runtime/model.js';
import type { ModelRuntimeOptions } from '../runtime/model-runtime.js';
import { installModelRequirements } from '../runtime/python-deps.js';
import type { ServerConfig } from './config.js';

export async function workerSetup(
  model: OpenedModel,
  config: ServerConfig,
  python: string,
  startupTimeoutSeconds: number | undefined,
  log: (msg: string) => void,
): Promise<Pick<ModelRuntimeOptions, 'startTimeoutMs' | 'loadTimeoutMs' | 'env'>> {
  const ms = (startupTimeoutSeconds ?? config.startupTimeoutSeconds) * 1000;
  const out: Pick<ModelRuntimeOptions, 'startTimeoutMs' | 'loadTimeoutMs' | 'env'> = { startTimeoutMs: ms, loadTimeoutMs: ms };
  const requirements = model.manifest?.model.requirementsFile;
  if (config.installPyDepPerModel && typeof requirements === 'string' && requirements && handlerLanguage(model.runtime) === 'python') {
    const dir = await installModelRequirements({
      modelName: model.name,
      modelDir: model.dir,
      requirementsFile: requirements,
      python,
      cacheRoot: config.pythonDepsLocation,
      log,
    });
    const existing = process.env['PYTHONPATH'];
    out.env = { ...process.env, PYTHONPATH: existing ? `${dir}${delimiter}${existing}` : dir };
  }
  return out;
}
