import type { IncomingMessage, ServerResponse } from 'node:http';
import { isMarError, MarError } from '../../errors.js';
import type { ApiContext } from '../api-context.js';
import { modelNames, modelReady, v1Predict } from '../oip/dataplane.js';
import type { ParsedUrl } from '../request-parser.js';
import { mimeType, requestHeaders } from '../request-parser.js';
import type { ResponseContext } from '../responses.js';
import { sendPrediction } from './inference.js';
import { kserveMethodNotAllowed, sendKServeError, sendKServeJson } from './kserve-answers.js';

/** KServe's v1 protocol: `/v1/models`, `/v1/models/{name}`, `/v1/models/{name}:predict` and `:explain`. */
export function isKServeV1Request(segments: readonly string[]): boolean {
  return segments[1] === 'v1' && segments[2] === 'models' && segments.length <= 4;
}

/** Answers a KServe v1 request (the caller checked isKServeV1Request); errors are `{"error": ...}`. */
export async function handleKServeV1(
  api: ApiContext,
  req: IncomingMessage,
  res: ServerResponse,
  rc: ResponseContext,
  url: ParsedUrl,
  body: Buffer,
): Promise<void> {
  try {
    const last = url.segments[3];
    if (last === undefined) {
      if (req.method !== 'GET') throw kserveMethodNotAllowed(req.method, url.path, 'GET');
      sendKServeJson(res, rc, 200, { models: modelNames(api) });
      return;
    }
    const colon = last.lastIndexOf(':');
    const verb = colon < 0 ? null : last.slice(colon + 1);
    const name = colon < 0 ? last : last.slice(0, colon);
    if (verb === null) {
      if (req.method !== 'GET') throw kserveMethodNotAllowed(req.method, url.path, 'GET');
      if (!modelReady(api, name)) throw new MarError('SERVICE_UNAVAILABLE', `Model ${name} is not ready: its workers are not up`);
      sendKServeJson(res, rc, 200, { name, ready: true });
      return;
    }
    if (verb !== 'predict' && verb !== 'explain') {
      throw new MarError('RESOURCE_NOT_FOUND', `${url.path}: KServe v1 has :predict and :explain, not :${verb}`);
    }
    if (req.method !== 'POST') throw kserveMethodNotAllowed(req.method, url.path, 'POST');
    const result = await v1Predict(api, { name, protocol: 'v1' }, body, mimeType(req.headers['content-type']), verb === 'explain', {
      requestId: rc.requestId,
      headers: requestHeaders(req),
      onCancel: (cancel) => (rc.onAbort = cancel),
    });
    if (result.statusCode >= 400) throw new MarError('PREDICTION_FAILED', result.body.toString('utf8'), { httpStatus: result.statusCode });
    sendPrediction(res, rc, result, api.log);
  } catch (err) {
    if (isMarError(err) && err.code === 'REQUEST_CANCELLED') return;
    sendKServeError(res, rc, err, api.log);
  }
}
