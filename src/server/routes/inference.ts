import type { IncomingMessage, ServerResponse } from 'node:http';
import { validateHeaderName, validateHeaderValue } from 'node:http';
import { isMarError } from '../../errors.js';
import type { PredictionResult } from '../../runtime/protocol.js';
import type { ApiContext } from '../api-context.js';
import { modelApi } from '../openapi.js';
import type { PredictionCallbacks } from '../prediction.js';
import { startPrediction } from '../prediction.js';
import { pingStatus } from '../readiness.js';
import type { ParsedUrl } from '../request-parser.js';
import { buildInferenceRequest } from '../request-parser.js';
import type { ResponseContext } from '../responses.js';
import { badRequest, notFound, sendError, sendJson, sendResponse } from '../responses.js';
import { envelopedPrediction } from './enveloped.js';

/** MMS InferenceRequestHandler#isInferenceReq: which paths the inference API claims. */
export function isInferenceRequest(segments: readonly string[]): boolean {
  const s1 = segments[1];
  return (
    segments.length === 0 ||
    (segments.length >= 2 && (s1 === 'ping' || s1 === 'predictions' || s1 === 'api-description' || s1 === 'invocations')) ||
    (segments.length === 4 && s1 === 'models' && segments[3] === 'invoke') ||
    (segments.length === 3 && segments[2] === 'predict')
  );
}

/**
 * Handles an inference-API request (the caller checked isInferenceRequest). A prediction is answered when the
 * worker's reply comes (no promise on the way: the batch-1 round trip is the hot path); a MarError thrown before
 * it is sent is the caller's to answer.
 */
export function handleInference(
  api: ApiContext,
  req: IncomingMessage,
  res: ServerResponse,
  rc: ResponseContext,
  url: ParsedUrl,
  body: Buffer,
): Promise<void> | undefined {
  const { segments } = url;
  switch (segments[1]) {
    case 'ping': {
      const { status, code } = pingStatus(api);
      sendJson(res, rc, code, { status });
      return;
    }
    case 'models':
    case 'invocations': {
      const invocations = segments.length === 2 && segments[1] === 'invocations';
      if (!invocations && !(segments.length === 4 && segments[1] === 'models' && segments[3] === 'invoke')) throw notFound();
      let name: string | null = invocations ? url.query.get('model_name') : segments[2]!;
      // MMS: an empty or missing name means the only startup model; an empty one otherwise stays '' (404)
      if ((name === null || name === '') && api.startupModels.size === 1) name = [...api.startupModels][0]!;
      return predict(api, req, res, rc, body, url.query, name);
    }
    case 'predictions':
      // /predictions/{name}[/{version}]
      if (segments.length < 3) throw notFound();
      return predict(api, req, res, rc, body, null, segments[2]!, segments[3]);
    default:
      // legacy /{model}/predict
      return predict(api, req, res, rc, body, url.query, segments[1]!);
  }
}

function predict(
  api: ApiContext,
  req: IncomingMessage,
  res: ServerResponse,
  rc: ResponseContext,
  body: Buffer,
  query: URLSearchParams | null,
  modelName: string | null,
  version?: string,
): Promise<void> | undefined {
  const input = buildInferenceRequest(rc.requestId, req, body, query);
  if (modelName === null) {
    // MMS then looks for a model_name input: a form field of a multipart or urlencoded body
    const field = input.params.find((p) => p.name === 'model_name');
    if (field === undefined) throw badRequest('Parameter model_name is required.');
    modelName = field.value.toString('utf8');
  }
  // 404 "Model not found" or "Model version: v does not exist for model: m"
  const entry = api.registry.find(modelName, version);
  rc.model = entry;
  if (req.method === 'OPTIONS') {
    sendJson(res, rc, 200, modelApi(modelName));
    return;
  }
  const answer = new PredictionAnswer(api, res, rc);
  // service_envelope=kserve|kservev2: the body is a KServe request (TorchServe's request envelopes, docs/kserve.md)
  if (api.config.serviceEnvelope === 'kserve' || api.config.serviceEnvelope === 'kservev2') {
    return envelopedPrediction(api, req, rc, body, { name: modelName, version }).then(
      (result) => answer.onResult(result),
      (err: unknown) => answer.onError(err),
    );
  }
  startPrediction(api, entry, input, { modelName, version, onCancel: (cancel) => (rc.onAbort = cancel) }, answer);
  return undefined;
}

/** Writes a prediction's answer, or its error (none when the client went away: nobody is left to answer). */
class PredictionAnswer implements PredictionCallbacks {
  readonly #api: ApiContext;
  readonly #res: ServerResponse;
  readonly #rc: ResponseContext;

  constructor(api: ApiContext, res: ServerResponse, rc: ResponseContext) {
    this.#api = api;
    this.#res = res;
    this.#rc = rc;
  }

  onResult(result: PredictionResult): void {
    sendPrediction(this.#res, this.#rc, result, this.#api.log);
  }

  onError(err: unknown): void {
    if (isMarError(err) && err.code === 'REQUEST_CANCELLED') return;
    sendError(this.#res, this.#rc, err, this.#api.log);
  }
}

// headers we compute ourselves, as MMS overwrites them after copying the handler's
const OWN_HEADERS = new Set(['content-length', 'connection', 'transfer-encoding', 'keep-alive', 'x-request-id']);

/**
 * Answers with the handler's status (already made valid by the runtime, see handlerStatus), reason phrase
 * (possibly empty), content type and headers.
 */
export function sendPrediction(res: ServerResponse, rc: ResponseContext, r: PredictionResult, log: (m: string) => void): void {
  const status = r.statusCode;
  // node refuses control characters in a status line
  const phrase = r.reasonPhrase === '' ? '' : r.reasonPhrase.replace(/[^\t\x20-\x7e\x80-\xff]/g, '');
  let contentType: string | null = r.contentType !== null && r.contentType !== '' ? r.contentType : null;
  let extra: Array<[string, string]> | undefined;
  if (r.headers.length > 0) {
    extra = [];
    for (const [name, value] of r.headers) {
      const lower = name.toLowerCase();
      if (OWN_HEADERS.has(lower)) continue;
      try {
        validateHeaderName(name);
        validateHeaderValue(name, value);
      } catch {
        log(`dropping invalid response header from the handler: ${JSON.stringify(name)}`);
        continue;
      }
      if (lower === 'content-type') {
        contentType = value;
        continue;
      }
      const i = extra.findIndex(([k]) => k.toLowerCase() === lower);
      if (i >= 0) extra[i] = [name, value];
      else extra.push([name, value]);
    }
  }
  try {
    sendResponse(res, rc, status, phrase, contentType, r.body, extra);
  } catch (err) {
    if (!res.headersSent) sendError(res, rc, err, log);
    else log(`failed to send a prediction: ${String(err)}`);
  }
}
