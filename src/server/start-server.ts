import type { LoadConfigOptions } from './config.js';
import { loadConfig } from './config.js';
import type { ModelServerOptions } from './server.js';
import { ModelServer } from './server.js';

/**
 * Where the configuration comes from (as for `model-server start`: config file, MMS_* environment, then
 * `properties` and `modelStore`/`models` on top), plus the server's own options.
 */
export interface StartModelServerOptions extends LoadConfigOptions, Omit<ModelServerOptions, 'config'> {}

/**
 * Starts the model server from code, as `model-server start --foreground` does minus the pid file and the signal
 * handlers: loads the configuration, binds the listeners and loads the startup models. Resolves with the running
 * server (`server.listeners` has the bound URLs, port 0 included); stop it with `server.stop()`.
 * Rejects with a one-line MarError for a bad configuration or an address that cannot be bound; nothing is left running then.
 */
export async function startModelServer(options: StartModelServerOptions = {}): Promise<ModelServer> {
  const { log, runtimeOptions, ...configOptions } = options;
  const server = new ModelServer({ config: loadConfig(configOptions), log, runtimeOptions });
  await server.start();
  return server;
}
