import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ApiContext } from '../api-context.js';
import type { ParsedUrl } from '../request-parser.js';
import type { ResponseContext } from '../responses.js';
import { sendKServeError } from './kserve-answers.js';
import { handleKServeV1, isKServeV1Request } from './kserve-v1.js';
import { handleOipV2, isOipHealthRequest, isOipV2Request } from './oip-v2.js';

/** The KServe paths of the inference API: v1 (`/v1/models...`) and the Open Inference Protocol (`/v2...`). */
export function isKServeRequest(segments: readonly string[]): boolean {
  return isKServeV1Request(segments) || isOipV2Request(segments);
}

/**
 * Answers a KServe request: the inference key first (token authorization), except for the health routes Kubernetes
 * probes call without one; then the v1 or v2 routes. Every error is KServe's `{"error": ...}`.
 */
export async function handleKServe(
  api: ApiContext,
  req: IncomingMessage,
  res: ServerResponse,
  rc: ResponseContext,
  url: ParsedUrl,
  body: Buffer,
): Promise<void> {
  try {
    if (!isOipHealthRequest(url.segments)) api.auth?.authorize(req, 'inference');
  } catch (err) {
    sendKServeError(res, rc, err, api.log);
    return;
  }
  if (isKServeV1Request(url.segments)) await handleKServeV1(api, req, res, rc, url, body);
  else await handleOipV2(api, req, res, rc, url, body);
}
