import type { IncomingMessage, ServerResponse } from 'node:http';
import { MarError } from '../../errors.js';
import type { ApiContext } from '../api-context.js';
import { parseLenientJson } from '../lenient-json.js';
import type { ModelEntry } from '../model-registry.js';
import { type RangedParam, rangedInt } from '../params.js';
import type { ParsedUrl } from '../request-parser.js';
import { intParam, mimeType, parseJavaBoolean } from '../request-parser.js';
import type { ResponseContext } from '../responses.js';
import { badRequest, internalError, methodNotAllowed, notFound, sendError, sendJson, sendStatus } from '../responses.js';
import { describeModel, setDefaultVersion } from './model-versions.js';

export { formatMmsDate } from './model-versions.js';

/** TorchServe ManagementRequestHandler#isManagementReq: `/models`, `/models/{name}[/{version}[/set-default]]`. */
export function isManagementRequest(segments: readonly string[]): boolean {
  if (segments.length === 0) return true;
  if (segments[1] !== 'models') return false;
  return (segments.length >= 2 && segments.length <= 4) || (segments.length === 5 && segments[4] === 'set-default');
}

export async function handleManagement(
  api: ApiContext,
  req: IncomingMessage,
  res: ServerResponse,
  rc: ResponseContext,
  url: ParsedUrl,
  body: Buffer,
): Promise<void> {
  const { segments } = url;
  if (segments[1] !== 'models') throw notFound();
  const method = req.method;
  // enable_model_api=false (TorchServe's default): register and unregister are not allowed (405)
  const modelApi = api.config.enableModelApi;
  if (segments.length < 3) {
    if (method === 'GET') return listModels(api, res, rc, url.query);
    if (method === 'POST' && modelApi) return registerModel(api, req, res, rc, url.query, body);
    throw methodNotAllowed();
  }
  const name = segments[2]!;
  const version = segments[3];
  if (segments.length === 5) {
    if (method === 'PUT') return setDefaultVersion(api, res, rc, name, version!);
    throw methodNotAllowed();
  }
  if (method === 'GET') return describeModel(api, res, rc, name, version);
  if (method === 'PUT') return scaleModel(api, res, rc, url.query, name, version ?? url.query.get('model_version') ?? undefined);
  if (method === 'DELETE' && modelApi) return unregisterModel(api, res, rc, name, version);
  throw methodNotAllowed();
}

function listModels(api: ApiContext, res: ServerResponse, rc: ResponseContext, query: URLSearchParams): void {
  let limit = intParam(query, 'limit', 100);
  let token = intParam(query, 'next_page_token', 0);
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
  sendJson(res, rc, 200, { nextPageToken, models });
}

/** Register parameters from the query string, or from a JSON body (Content-Type: application/json). */
class RegisterParams {
  readonly #json: Record<string, unknown> | null;
  readonly #query: URLSearchParams;

  constructor(json: Record<string, unknown> | null, query: URLSearchParams) {
    this.#json = json;
    this.#query = query;
  }

  str(key: string): string | undefined {
    if (this.#json === null) return this.#query.get(key) ?? undefined;
    const v = this.#json[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v === 'string') return v;
    if (typeof v === 'number' || typeof v === 'boolean') return String(v);
    throw badRequest(`Invalid value for ${key}: expected a string.`);
  }

  /** A ranged numeric parameter (params.ts), undefined when not given. */
  ranged(key: RangedParam): number | undefined {
    return rangedInt(key, this.#json === null ? this.#query.get(key) : this.#json[key]);
  }

  bool(key: string, def: boolean): boolean {
    if (this.#json === null) {
      const raw = this.#query.get(key);
      return raw === null ? def : parseJavaBoolean(raw);
    }
    const v = this.#json[key];
    if (v === undefined || v === null) return def;
    if (typeof v === 'boolean') return v;
    if (typeof v === 'string') return parseJavaBoolean(v);
    throw badRequest(`Invalid value for ${key}: expected true or false.`);
  }
}

async function registerModel(
  api: ApiContext,
  req: IncomingMessage,
  res: ServerResponse,
  rc: ResponseContext,
  query: URLSearchParams,
  body: Buffer,
): Promise<void> {
  let json: Record<string, unknown> | null = null;
  if (mimeType(req.headers['content-type'])?.toLowerCase() === 'application/json') {
    const text = body.toString('utf8');
    let parsed: unknown;
    try {
      parsed = JSON.parse(text || 'null');
    } catch {
      // MMS's Gson is lenient: single quotes, unquoted names, comments
      parsed = parseLenientJson(text);
      if (parsed === undefined) throw badRequest('Invalid JSON request body.');
    }
    if (parsed !== null && (typeof parsed !== 'object' || Array.isArray(parsed))) throw badRequest('Invalid JSON request body.');
    json = (parsed as Record<string, unknown> | null) ?? {};
  }
  const p = new RegisterParams(json, query);
  const url = p.str('url');
  if (url === undefined) throw badRequest('Parameter url is required.');
  const modelName = p.str('model_name') || undefined;
  const handler = p.str('handler') || undefined;
  const runtime = p.str('runtime');
  // Parameters not given stay undefined: their defaults are rows of the precedence table (runtime/serving-options.ts).
  const batchSize = p.ranged('batch_size');
  const maxBatchDelayMs = p.ranged('max_batch_delay');
  const initialWorkers = p.ranged('initial_workers');
  const synchronous = p.bool('synchronous', true);
  // seconds, from the query and from JSON (MMS multiplies a query value by 60; we do not)
  const responseTimeoutSeconds = p.ranged('response_timeout');
  // TorchServe's startup_timeout (seconds; default default_startup_timeout)
  const startupTimeoutSeconds = p.ranged('startup_timeout');

  const entry = await api.registry.register({
    url,
    ...(modelName !== undefined ? { modelName } : {}),
    ...(handler !== undefined ? { handler } : {}),
    ...(runtime !== undefined ? { runtime } : {}),
    ...(startupTimeoutSeconds !== undefined ? { startupTimeoutSeconds } : {}),
    request: { caller: 'register', batchSize, maxBatchDelayMs, responseTimeoutSeconds, initialWorkers },
  });
  // initial_workers, or (TorchServe) the minWorkers/maxWorkers pair of the archive's model-config.yaml
  const { minWorkers, maxWorkers } = entry.serving;
  if (minWorkers <= 0) {
    sendStatus(res, rc, api.dialect.registered(entry.name, versionOf(entry)));
    return;
  }
  await updateModelWorkers(api, res, rc, entry.name, minWorkers, maxWorkers, synchronous, entry, entry.version);
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
  res: ServerResponse,
  rc: ResponseContext,
  name: string,
  minWorkers: number,
  maxWorkers: number,
  synchronous: boolean,
  registered: ModelEntry | null,
  version?: string,
): Promise<void> {
  const pending = api.registry.scale(name, minWorkers, maxWorkers, synchronous, version);
  if (!synchronous) {
    pending.catch((err: unknown) => api.log(`scaling ${name} failed: ${String(err)}`));
    sendStatus(res, rc, 'Processing worker updates...', 202);
    return;
  }
  const result = await pending;
  if (result.failed > 0) {
    if (registered !== null) {
      // removed from the table now; workers stop in the background
      api.registry.unregister(name, { entry: registered }).catch((err: unknown) => api.log(`unregistering ${name} failed: ${String(err)}`));
    }
    const entry = registered ?? api.registry.get(name);
    const message = api.dialect.startFailed(name, entry ? versionOf(entry) : '1.0', result.error);
    sendError(res, rc, internalError(message, result.error?.httpStatus ?? 500));
    return;
  }
  if (result.running >= result.configured) {
    const d = api.dialect;
    sendStatus(res, rc, registered ? d.registeredWithWorkers(name, versionOf(registered), minWorkers) : d.scaled(name, minWorkers));
  } else sendStatus(res, rc, 'Workers scaling in progress...', api.dialect.partialStatus);
}

async function scaleModel(
  api: ApiContext,
  res: ServerResponse,
  rc: ResponseContext,
  query: URLSearchParams,
  name: string,
  version: string | undefined,
): Promise<void> {
  const minWorkers = rangedInt('min_worker', query.get('min_worker')) ?? 1;
  const maxWorkers = rangedInt('max_worker', query.get('max_worker')) ?? minWorkers;
  if (maxWorkers < minWorkers) throw badRequest('max_worker cannot be less than min_worker.');
  const synchronous = parseJavaBoolean(query.get('synchronous'));
  api.registry.find(name, version); // 404 for an unknown name or version
  await updateModelWorkers(api, res, rc, name, minWorkers, maxWorkers, synchronous, null, version);
}

async function unregisterModel(api: ApiContext, res: ServerResponse, rc: ResponseContext, name: string, version?: string): Promise<void> {
  try {
    await api.registry.unregister(name, version === undefined ? {} : { version });
  } catch (err) {
    if (err instanceof MarError) throw err;
    throw internalError(`Interrupted while cleaning resources: ${name}`);
  }
  sendStatus(res, rc, `Model "${name}" unregistered`);
}
