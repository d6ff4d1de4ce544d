/**
 * The startup models' workers, spawned as soon as the config is read (issue 16's cold start, issue 14's parallel
 * start): while the server's modules load and the archives are extracted, the interpreters start; the workers
 * then adopt them (runtime/worker-prespawn.ts). Only a guess: what the registry finally launches decides, and a
 * worker that was guessed wrong is discarded.
 */

import { isAbsolute, join } from 'node:path';
import { resolveRuntime } from '../handler/runtimes.js';
import { workerFieldCap } from '../runtime/launchers.js';
import { peekModel } from '../runtime/model-peek.js';
import { resolveServingOptions } from '../runtime/serving-options.js';
import { type PrespawnGroup, prespawnWorkers } from '../runtime/worker-prespawn.js';
import type { ServerConfig } from './config.js';
import { workerMetrics } from './metrics/worker-metrics.js';

/** At most this many interpreters start ahead of their models, whatever load_models asks for. */
const MAX_PRESPAWNED = 8;

/**
 * The startup models' local paths and worker counts (null: the server's default): `model_snapshot`'s archives in the
 * model store when there is one (it replaces load_models, as in TorchServe), else the local paths of `load_models`
 * (`[name=]path`); `ALL` and downloads are left to the registry.
 */
async function startupModels(config: ServerConfig): Promise<Array<{ path: string; workers: number | null }>> {
  if (config.modelSnapshot !== null) {
    const store = config.modelStore;
    if (store === null) return [];
    // only a server started from a snapshot loads this module here; a bad snapshot is the registry's to report
    const snapshot = (await import('./snapshot.js')).parseSnapshot(config.modelSnapshot);
    return Object.values(snapshot.models).flatMap((versions) =>
      Object.values(versions).map((s) => ({ path: join(store, s.marName), workers: s.minWorkers })),
    );
  }
  const models = config.loadModels;
  if (models.length === 1 && models[0]!.toUpperCase() === 'ALL') return [];
  const found: Array<{ path: string; workers: number | null }> = [];
  for (const item of models) {
    const eq = item.indexOf('=');
    const url = eq > 0 && !/^https?:\/\//i.test(item) ? item.slice(eq + 1) : item;
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url) || url.includes('..')) continue;
    if (isAbsolute(url)) found.push({ path: url, workers: null });
    else if (config.modelStore !== null) found.push({ path: join(config.modelStore, url), workers: null });
  }
  return found;
}

/** Spawns the startup workers of `config`'s load_models; discard the group once the startup models are loaded. */
export async function prespawnStartupWorkers(config: ServerConfig): Promise<PrespawnGroup> {
  const { options: serving } = resolveServingOptions({ modelConfig: null, server: config, request: { caller: 'startup' } });
  let budget = MAX_PRESPAWNED;
  const models = await startupModels(config).catch(() => []);
  const groups = await Promise.all(
    models.map(async ({ path, workers }) => {
      const count = Math.min(workers ?? serving.minWorkers, budget);
      budget -= count;
      if (count <= 0) return null;
      try {
        const { cacheDir, cacheMaxSize } = config.modelCache;
        const peek = await peekModel(path, {
          ...(cacheDir !== undefined ? { dir: cacheDir } : {}),
          ...(cacheMaxSize !== undefined ? { maxSize: cacheMaxSize } : {}),
        });
        return await prespawnWorkers(
          {
            runtime: resolveRuntime(peek.runtime),
            standInDir: peek.standInDir,
            workers: workers ?? serving.minWorkers,
            decodeInputRequest: serving.decodeInputRequest,
            metrics: workerMetrics(config),
            ...(serving.python !== undefined ? { python: serving.python } : {}),
            ...(serving.maxRequestBytes !== undefined ? { maxFieldBytes: workerFieldCap(serving.maxRequestBytes) } : {}),
          },
          count,
        );
      } catch {
        // an unknown runtime: the registry says so
        return null;
      }
    }),
  );
  return {
    pids: groups.flatMap((g) => g?.pids ?? []),
    discard: async () => (await Promise.all(groups.map(async (g) => (g ? g.discard() : 0)))).reduce((a, b) => a + b, 0),
  };
}
