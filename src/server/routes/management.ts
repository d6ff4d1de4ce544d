import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ApiContext } from '../api-context.js';
import { parseLenientJson } from '../lenient-json.js';
import * as ops from '../management-ops.js';
import { type RangedParam, rangedInt } from '../params.js';
import type { ParsedUrl } from '../request-parser.js';
import { intParam, mimeType, parseJavaBoolean } from '../request-parser.js';
import type { ResponseContext } from '../responses.js';
import { badRequest, methodNotAllowed, notFound, sendJson, sendStatus } from '../responses.js';
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
    if (method === 'PUT') return sendStatus(res, rc, setDefaultVersion(api, name, version!));
    throw methodNotAllowed();
  }
  if (method === 'GET') return sendJson(res, rc, 200, describeModel(api, name, version));
  if (method === 'PUT') return scaleModel(api, res, rc, url.query, name, version ?? url.query.get('model_version') ?? undefined);
  if (method === 'DELETE' && modelApi) return unregisterModel(api, res, rc, name, version);
  throw methodNotAllowed();
}

function listModels(api: ApiContext, res: ServerResponse, rc: ResponseContext, query: URLSearchParams): void {
  sendJson(res, rc, 200, ops.listModels(api, intParam(query, 'limit', 100), intParam(query, 'next_page_token', 0)));
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

  const answer = await ops.registerModel(api, {
    url,
    modelName,
    handler,
    runtime,
    batchSize,
    maxBatchDelayMs,
    initialWorkers,
    responseTimeoutSeconds,
    startupTimeoutSeconds,
    synchronous,
  });
  sendStatus(res, rc, answer.text, answer.status);
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
  const synchronous = parseJavaBoolean(query.get('synchronous'));
  const answer = await ops.scaleWorkers(api, name, version, minWorkers, maxWorkers, synchronous);
  sendStatus(res, rc, answer.text, answer.status);
}

async function unregisterModel(api: ApiContext, res: ServerResponse, rc: ResponseContext, name: string, version?: string): Promise<void> {
  const answer = await ops.unregisterModel(api, name, version);
  sendStatus(res, rc, answer.text, answer.status);
}
