/** TorchServe's token API on the management listener: `GET /token?type=management|inference` (auth.ts). */

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TokenAuthorization } from '../auth.js';
import type { ParsedUrl } from '../request-parser.js';
import type { ResponseContext } from '../responses.js';
import { sendResponse } from '../responses.js';

/** `/token` (TorchServe answers it on the management API while token authorization is on). */
export function isTokenRequest(segments: readonly string[]): boolean {
  return segments.length === 2 && segments[1] === 'token';
}

/** Rotates the key `type` names (the caller shows the API key); TorchServe answers 200 with an empty JSON body. */
export async function handleToken(
  auth: TokenAuthorization,
  req: IncomingMessage,
  res: ServerResponse,
  rc: ResponseContext,
  url: ParsedUrl,
): Promise<void> {
  await auth.rotate(req, url.query.get('type'));
  sendResponse(res, rc, 200, 'OK', 'application/json', '\n');
}
