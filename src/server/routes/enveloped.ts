import type { IncomingMessage } from 'node:http';
import type { PredictionResult } from '../../runtime/protocol.js';
import type { ApiContext } from '../api-context.js';
import { envelopedPredict } from '../oip/dataplane.js';
import { INFERENCE_HEADER } from '../oip/v2-json.js';
import { mimeType, requestHeaders } from '../request-parser.js';
import type { ResponseContext } from '../responses.js';

/**
 * A TorchServe route (/predictions, /invocations, ...) when service_envelope names a KServe envelope: the HTTP
 * request's body, content type and Inference-Header-Content-Length through the envelope (oip/dataplane.ts).
 */
export async function envelopedPrediction(
  api: ApiContext,
  req: IncomingMessage,
  rc: ResponseContext,
  body: Buffer,
  target: { name: string; version?: string | undefined },
): Promise<PredictionResult> {
  const call = { requestId: rc.requestId, headers: requestHeaders(req), onCancel: (cancel: (() => void) | null) => (rc.onAbort = cancel) };
  const headerLength = req.headers[INFERENCE_HEADER];
  const length = typeof headerLength === 'string' ? headerLength : undefined;
  return envelopedPredict(api, target, body, mimeType(req.headers['content-type']), length, call);
}
