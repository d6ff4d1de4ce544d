import type { IncomingMessage } from 'node:http';
import type { PredictionResult } from '../../runtime/protocol.js';
import type { ApiContext } from '../api-context.js';
import { v1Predict, v2Infer } from '../oip/dataplane.js';
import { formatRestResponse, INFERENCE_HEADER, parseRestRequest } from '../oip/v2-json.js';
import { mimeType, requestHeaders } from '../request-parser.js';
import type { ResponseContext } from '../responses.js';

/**
 * A TorchServe route (/predictions, /invocations, ...) when service_envelope names a KServe envelope: as in
 * TorchServe, every request of the model goes through it, so the body must be a KServe v1 (`kserve`) or v2
 * (`kservev2`, binary extension included) request, answered in the same protocol.
 */
export async function envelopedPrediction(
  api: ApiContext,
  req: IncomingMessage,
  rc: ResponseContext,
  body: Buffer,
  target: { name: string; version?: string | undefined },
): Promise<PredictionResult> {
  const call = { requestId: rc.requestId, headers: requestHeaders(req), onCancel: (cancel: (() => void) | null) => (rc.onAbort = cancel) };
  const where = {
    name: target.name,
    ...(target.version !== undefined ? { version: target.version } : {}),
    protocol: 'torchserve' as const,
  };
  if (api.config.serviceEnvelope === 'kserve') return v1Predict(api, where, body, mimeType(req.headers['content-type']), false, call);
  const headerLength = req.headers[INFERENCE_HEADER];
  const infer = parseRestRequest(body, typeof headerLength === 'string' ? headerLength : undefined);
  const out = formatRestResponse(infer, await v2Infer(api, where, infer, call, headerLength === undefined ? body : null));
  return {
    requestId: rc.requestId,
    statusCode: 200,
    reasonPhrase: '',
    contentType: out.contentType,
    headers: out.jsonLength === null ? [] : [['Inference-Header-Content-Length', String(out.jsonLength)]],
    body: out.body,
  };
}
