/**
 * Whether the server and its models can answer inference requests: the one answer KServe's v1 and v2 health routes,
 * gRPC's ServerReady/ModelReady and Kubernetes' readiness probe (`/v2/health/ready`) all give.
 */
import type { ApiContext } from './api-context.js';
import type { ModelEntry, ModelRegistry } from './model-registry.js';

/** The models the server loaded at start (load_models or model_snapshot), filled in before any listener opens. */
export interface StartupModels {
  /** Every model version registered at start. */
  entries: ModelEntry[];
  /** `name` (or `name version`) of each startup model that failed to register. */
  failed: string[];
}

/** A model version can infer: not unloading, and at least max(1, minWorkers) workers running. */
export function isModelReady(entry: ModelEntry): boolean {
  if (entry.runtime.isClosed) return false;
  return entry.runtime.health().running >= Math.max(1, entry.runtime.minWorkers);
}

/**
 * The server is ready when every model loaded at start registered and has its minimum workers up (one at least); a
 * startup model unregistered since no longer counts. `reason` says what is missing.
 */
export function serverReadiness(registry: ModelRegistry, startup: StartupModels): { ready: boolean; reason: string } {
  if (startup.failed.length > 0) return { ready: false, reason: `startup model(s) failed to load: ${startup.failed.join(', ')}` };
  const waiting = startup.entries.filter((e) => registry.get(e.name, e.version) === e && !isModelReady(e));
  if (waiting.length === 0) return { ready: true, reason: '' };
  const what = waiting.map(
    (e) => `${e.name} ${e.version} (${e.runtime.health().running} of ${Math.max(1, e.runtime.minWorkers)} workers up)`,
  );
  return { ready: false, reason: `not every startup model has its workers up: ${what.join(', ')}` };
}

/** `/ping` and TorchServe's gRPC Ping: the dialect's health text and HTTP status from each model's running workers. */
export function pingStatus(api: Pick<ApiContext, 'registry' | 'dialect'>): { status: string; code: number } {
  // per model: workers running, and workers configured (MMS minWorkers)
  const models = api.registry.names().map((n) => {
    const { runtime } = api.registry.get(n)!;
    return { running: runtime.health().running, configured: runtime.minWorkers };
  });
  return api.dialect.ping(models);
}
