/**
 * The management operations every management front end runs (the HTTP management API in routes/management.ts and
 * TorchServe's gRPC ManagementAPIsService in grpc/torchserve-management.ts): list, register, scale and unregister,
 * with the dialect's texts and status codes. Each answers a value (a JSON body, or a status text with its HTTP
 * status); failures are MarErrors, which each front end turns into its own error answer.
 */
import { MarError } from '../errors.js';
import type { ApiContext } from './api-context.js';
import type { ModelEntry } from './model-registry.js';
import { badRequest, internalError } from './responses.js';

/** A `{"status": text}` answer with its HTTP status (200, 202, 206/210); gRPC answers the text. */
export interface StatusAnswer {
  status: number;
  text: string;
}

/** `GET /models` (ListModels): a page of at most 100 models from `token` on, and the next page's token. */
export function listModels(
  api: ApiContext,
  limit: number,
  token: number,
): { nextPageToken: string | undefined; models: Array<{ modelName: string; modelUrl: string }> } {
  if (limit > 100 || limit < 0) limit = 100;
  if (token < 0) token = 0;
  const names = api.registry.names();
  let last = token + limit;
  let nextPageToken: string | undefined;
  if (last > names.length) last = names.length;
  else nextPageToken = String(last);
  const models: Array<{ modelName: string; modelUrl: string }> = [];
  for (let i = token; i < last; i++) {
    const e = api.registry.get(names[i]!);
    if (e) models.push({ modelName: e.name, modelUrl: e.url });
  }
  return { nextPageToken, models };
}

/** What a register request asks for; a parameter not given stays undefined (its default is the precedence table's). */
export interface RegisterOptions {
  url: string;
  modelName?: string | undefined;
  handler?: string | undefined;
  runtime?: string | undefined;
  batchSize?: number | undefined;
  maxBatchDelayMs?: number | undefined;
  initialWorkers?: number | undefined;
  /** Seconds. */
  responseTimeoutSeconds?: number | undefined;
  startupTimeoutSeconds?: number | undefined;
  synchronous: boolean;
}

/** `POST /models` (RegisterModel): registers, then starts the model's minimum workers (see scaleWorkers). */
export async function registerModel(api: ApiContext, o: RegisterOptions): Promise<StatusAnswer> {
  const entry = await api.registry.register({
    url: o.url,
    ...(o.modelName !== undefined ? { modelName: o.modelName } : {}),
    ...(o.handler !== undefined ? { handler: o.handler } : {}),
    ...(o.runtime !== undefined ? { runtime: o.runtime } : {}),
    ...(o.startupTimeoutSeconds !== undefined ? { startupTimeoutSeconds: o.startupTimeoutSeconds } : {}),
    request: {
      caller: 'register',
      batchSize: o.batchSize,
      maxBatchDelayMs: o.maxBatchDelayMs,
      responseTimeoutSeconds: o.responseTimeoutSeconds,
      initialWorkers: o.initialWorkers,
    },
  });
  // initial_workers, or (TorchServe) the minWorkers/maxWorkers pair of the archive's model-config.yaml
  const { minWorkers, maxWorkers } = entry.serving;
  if (minWorkers <= 0) return { status: 200, text: api.dialect.registered(entry.name, versionOf(entry)) };
  return updateModelWorkers(api, entry.name, minWorkers, maxWorkers, o.synchronous, entry, entry.version);
}

/** `PUT /models/{name}[/{version}]` (ScaleWorker): 404 for an unknown name or version, 400 for max < min. */
export async function scaleWorkers(
  api: ApiContext,
  name: string,
  version: string | undefined,
  minWorkers: number,
  maxWorkers: number,
  synchronous: boolean,
): Promise<StatusAnswer> {
  if (maxWorkers < minWorkers) throw badRequest('max_worker cannot be less than min_worker.');
  api.registry.find(name, version); // 404 for an unknown name or version
  return updateModelWorkers(api, name, minWorkers, maxWorkers, synchronous, null, version);
}

/** `DELETE /models/{name}[/{version}]` (UnregisterModel). */
export async function unregisterModel(api: ApiContext, name: string, version?: string): Promise<StatusAnswer> {
  try {
    await api.registry.unregister(name, version === undefined ? {} : { version });
  } catch (err) {
    if (err instanceof MarError) throw err;
    throw internalError(`Interrupted while cleaning resources: ${name}`);
  }
  return { status: 200, text: `Model "${name}" unregistered` };
}

/** The version TorchServe shows: the manifest's modelVersion, else 1.0. */
function versionOf(entry: ModelEntry): string {
  return entry.model.modelVersion ?? '1.0';
}

/**
 * MMS updateModelWorkers: async -> 202 at once; sync -> 200 "Workers scaled", 210 "Workers scaling in
 * progress...", or the failed worker's status with "Failed to start workers" (a register then unregisters).
 * TorchServe's texts and its 206 come from the dialect table.
 */
async function updateModelWorkers(
  api: ApiContext,
  name: string,
  minWorkers: number,
  maxWorkers: number,
  synchronous: boolean,
  registered: ModelEntry | null,
  version?: string,
): Promise<StatusAnswer> {
  const pending = api.registry.scale(name, minWorkers, maxWorkers, synchronous, version);
  if (!synchronous) {
    pending.catch((err: unknown) => api.log(`scaling ${name} failed: ${String(err)}`));
    return { status: 202, text: 'Processing worker updates...' };
  }
  const result = await pending;
  if (result.failed > 0) {
    if (registered !== null) {
      // removed from the table now; workers stop in the background
      api.registry.unregister(name, { entry: registered }).catch((err: unknown) => api.log(`unregistering ${name} failed: ${String(err)}`));
    }
    const entry = registered ?? api.registry.get(name);
    throw internalError(api.dialect.startFailed(name, entry ? versionOf(entry) : '1.0', result.error), result.error?.httpStatus ?? 500);
  }
  const d = api.dialect;
  if (result.running >= result.configured) {
    return {
      status: 200,
      text: registered ? d.registeredWithWorkers(name, versionOf(registered), minWorkers) : d.scaled(name, minWorkers),
    };
  }
  return { status: d.partialStatus, text: 'Workers scaling in progress...' };
}
