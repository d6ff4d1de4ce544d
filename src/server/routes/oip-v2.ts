import type { IncomingMessage, ServerResponse } from 'node:http';
import { isMarError, MarError } from '../../errors.js';
import type { ApiContext } from '../api-context.js';
import { modelMetadata, modelNames, modelReady, serverMetadata, serverReady, v2Infer } from '../oip/dataplane.js';
import { formatRestResponse, INFERENCE_HEADER, parseRestRequest } from '../oip/v2-json.js';
import type { ParsedUrl } from '../request-parser.js';
import { requestHeaders } from '../request-parser.js';
import type { ResponseContext } from '../responses.js';
import { sendResponse } from '../responses.js';
import { kserveMethodNotAllowed, sendKServeError, sendKServeJson } from './kserve-answers.js';

/** The Open Inference Protocol's REST paths: everything under `/v2` (KServe's rest_predict_v2.yaml). */
export function isOipV2Request(segments: readonly string[]): boolean {
  return segments[1] === 'v2';
}

/** The health routes, which Kubernetes probes call without a key: they pass token authorization. */
export function isOipHealthRequest(segments: readonly string[]): boolean {
  return segments.length === 4 && segments[1] === 'v2' && segments[2] === 'health' && (segments[3] === 'live' || segments[3] === 'ready');
}

/** Answers an OIP v2 request (the caller checked isOipV2Request); errors are `{"error": ...}`. */
export async function handleOipV2(
  api: ApiContext,
  req: IncomingMessage,
  res: ServerResponse,
  rc: ResponseContext,
  url: ParsedUrl,
  body: Buffer,
): Promise<void> {
  try {
    await route(api, req, res, rc, url, body);
  } catch (err) {
    if (isMarError(err) && err.code === 'REQUEST_CANCELLED') return;
    sendKServeError(res, rc, err, api.log);
  }
}

async function route(
  api: ApiContext,
  req: IncomingMessage,
  res: ServerResponse,
  rc: ResponseContext,
  url: ParsedUrl,
  body: Buffer,
): Promise<void> {
  const s = url.segments;
  const get = (): void => {
    if (req.method !== 'GET') throw kserveMethodNotAllowed(req.method, url.path, 'GET');
  };
  if (s.length === 2) {
    get();
    sendKServeJson(res, rc, 200, serverMetadata());
    return;
  }
  if (s[2] === 'health' && s.length === 4 && (s[3] === 'live' || s[3] === 'ready')) {
    get();
    if (s[3] === 'live') {
      sendKServeJson(res, rc, 200, { live: true });
      return;
    }
    const { ready, reason } = serverReady(api);
    if (!ready) throw new MarError('SERVICE_UNAVAILABLE', `Server is not ready: ${reason}`);
    sendKServeJson(res, rc, 200, { ready: true });
    return;
  }
  if (s[2] !== 'models') throw notFound(url.path);
  if (s.length === 3) {
    get();
    sendKServeJson(res, rc, 200, { models: modelNames(api) });
    return;
  }
  // /v2/models/{name}[/versions/{version}][/ready | /infer]
  const name = s[3]!;
  let rest = s.slice(4);
  let version: string | undefined;
  if (rest[0] === 'versions') {
    if (rest.length < 2) throw notFound(url.path);
    version = rest[1]!;
    rest = rest.slice(2);
  }
  if (rest.length === 0) {
    get();
    sendKServeJson(res, rc, 200, modelMetadata(api, name, version));
    return;
  }
  if (rest.length === 1 && rest[0] === 'ready') {
    get();
    if (!modelReady(api, name, version)) throw new MarError('SERVICE_UNAVAILABLE', `Model ${name} is not ready: its workers are not up`);
    sendKServeJson(res, rc, 200, { name, ready: true });
    return;
  }
  if (rest.length === 1 && rest[0] === 'infer') {
    if (req.method !== 'POST') throw kserveMethodNotAllowed(req.method, url.path, 'POST');
    const headerLength = req.headers[INFERENCE_HEADER];
    const infer = parseRestRequest(body, typeof headerLength === 'string' ? headerLength : undefined);
    const response = await v2Infer(
      api,
      { name, ...(version !== undefined ? { version } : {}), protocol: 'v2' },
      infer,
      { requestId: rc.requestId, headers: requestHeaders(req), onCancel: (cancel) => (rc.onAbort = cancel) },
      headerLength === undefined ? body : null,
    );
    const out = formatRestResponse(infer, response);
    const extra: Array<[string, string]> = out.jsonLength === null ? [] : [['Inference-Header-Content-Length', String(out.jsonLength)]];
    sendResponse(res, rc, 200, 'OK', out.contentType, out.body, extra);
    return;
  }
  throw notFound(url.path);
}

function notFound(path: string): MarError {
  return new MarError('RESOURCE_NOT_FOUND', `${path} is not an Open Inference Protocol path (see docs/kserve.md)`);
}
