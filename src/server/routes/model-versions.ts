/**
 * The management answers that know about model versions: describe (`GET /models/{name}[/{version}|/all]`, gRPC
 * DescribeModel) and set-default (`PUT /models/{name}/{version}/set-default`, gRPC SetDefault), with TorchServe's
 * shapes and texts, as values each front end sends its own way.
 */
import type { ApiContext } from '../api-context.js';
import type { ModelEntry } from '../model-registry.js';
import { defaultVersionSet } from '../version-texts.js';

/** `yyyy-MM-dd'T'HH:mm:ss.SSS'Z'` on local time with a literal Z, as MMS's Gson date format. */
export function formatMmsDate(d: Date): string {
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return (
    `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T` +
    `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}Z`
  );
}

/**
 * `GET /models/{name}`: the default version, as MMS's object (MMS dialect) or TorchServe's one-element array;
 * `GET /models/{name}/all`: every version; `GET /models/{name}/{version}`: that version. Arrays mark the default
 * version with `isDefault`. 404 for an unknown name or version.
 */
export function describeModel(api: ApiContext, name: string, version?: string): unknown {
  if (version === undefined) {
    const e = api.registry.find(name);
    return api.dialect.describeAsArray ? [describeVersion(api, e)] : describeEntry(e, e.model.modelVersion);
  }
  const entries = version === 'all' ? api.registry.versions(name) : [api.registry.find(name, version)];
  if (entries.length === 0) api.registry.find(name); // throws "Model not found"
  return entries.map((e) => describeVersion(api, e));
}

/** `PUT /models/{name}/{version}/set-default`: TorchServe's text; 404 for an unknown name or version. */
export function setDefaultVersion(api: ApiContext, name: string, version: string): string {
  api.registry.setDefault(name, version);
  return defaultVersionSet(name, version);
}

function describeVersion(api: ApiContext, e: ModelEntry): Record<string, unknown> {
  return { ...describeEntry(e, e.version), isDefault: api.registry.isDefault(e) };
}

/** One model version as MMS describes it (field order as MMS's DescribeModelResponse). */
function describeEntry(e: ModelEntry, modelVersion: string | undefined): Record<string, unknown> {
  const engine = e.model.manifest?.['engine'] as { engineName?: unknown } | undefined;
  const workers = e.runtime.workers().map((w) => ({
    id: w.id,
    startTime: w.startTime ? formatMmsDate(w.startTime) : undefined,
    // MMS shows READY for a loaded worker (busy or not), UNLOADING otherwise; we keep STARTING/RESTARTING visible
    status: w.status === 'BUSY' ? 'READY' : w.status === 'STOPPED' ? 'UNLOADING' : w.status,
    gpu: w.gpu,
    memoryUsage: w.memoryUsage,
    pid: w.pid ?? undefined,
  }));
  return {
    modelName: e.name,
    modelVersion,
    modelUrl: e.url,
    engine: typeof engine?.engineName === 'string' ? engine.engineName : undefined,
    runtime: e.model.runtime,
    minWorkers: e.runtime.minWorkers,
    maxWorkers: e.runtime.maxWorkers,
    batchSize: e.runtime.batchSize,
    maxBatchDelay: e.runtime.maxBatchDelayMs,
    loadedAtStartup: e.loadedAtStartup,
    workers,
  };
}
