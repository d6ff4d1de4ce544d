import type { ServerResponse } from 'node:http';
import { isMarError, MarError } from '../../errors.js';
import type { ResponseContext } from '../responses.js';
import { reasonPhrase, sendResponse } from '../responses.js';

/** KServe's JSON answers (compact, as its ORJSON responses), with our usual headers (x-request-id, no-cache). */
export function sendKServeJson(
  res: ServerResponse,
  rc: ResponseContext,
  status: number,
  value: unknown,
  extra?: Array<[string, string]>,
): void {
  sendResponse(res, rc, status, reasonPhrase(status), 'application/json', JSON.stringify(value), extra);
}

/** KServe's error body `{"error": "<message>"}` with the registry's status; anything else is a logged 500. */
export function sendKServeError(res: ServerResponse, rc: ResponseContext, err: unknown, log: (msg: string) => void): void {
  if (isMarError(err)) {
    sendKServeJson(res, rc, err.httpStatus, { error: err.message });
    return;
  }
  log(`unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  sendKServeJson(res, rc, 500, { error: 'Internal server error' });
}

/** 405 for a KServe path asked with the wrong method. */
export function kserveMethodNotAllowed(method: string | undefined, path: string, allowed: string): MarError {
  return new MarError('METHOD_NOT_ALLOWED', `${method ?? '?'} is not allowed on ${path}; use ${allowed}`);
}
