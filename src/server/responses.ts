import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { isMarError, MarError } from '../errors.js';

/** Gson escapes these (HTML-safe mode, MMS's default) and so do we. */
const GSON_ESCAPES: Record<string, string> = {
  '<': '\\u003c',
  '>': '\\u003e',
  '&': '\\u0026',
  '=': '\\u003d',
  "'": '\\u0027',
  '\u2028': '\\u2028',
  '\u2029': '\\u2029',
};

/**
 * Serialises like MMS's Gson: 2-space pretty printing, null/undefined fields omitted, `= < > & '` escaped
 * as \u003d etc., plus a trailing newline. (Those characters can only occur inside JSON strings, so a global
 * replace is safe.)
 */
export function toMmsJson(value: unknown): string {
  const text = JSON.stringify(value, (_k, v: unknown) => (v === null ? undefined : v), 2) ?? 'null';
  return `${text.replace(/[<>&='\u2028\u2029]/g, (c) => GSON_ESCAPES[c]!)}\n`;
}

// MMS's no-cache trio (pragma, cache-control, expires) on every answer
const NO_CACHE = 'no-cache';
const CACHE_CONTROL = 'no-cache; no-store, must-revalidate, private';
const EXPIRES = 'Thu, 01 Jan 1970 00:00:00 UTC';

/**
 * Netty 4.1's HttpResponseStatus phrases (MMS answers errors with HttpResponseStatus.valueOf(code)). They differ
 * from node's STATUS_CODES: 413, 414, 416, 425, and node knows codes Netty does not (418, 451, 508, ...).
 */
const NETTY_REASONS: Readonly<Record<number, string>> = {
  100: 'Continue',
  101: 'Switching Protocols',
  102: 'Processing',
  200: 'OK',
  201: 'Created',
  202: 'Accepted',
  203: 'Non-Authoritative Information',
  204: 'No Content',
  205: 'Reset Content',
  206: 'Partial Content',
  207: 'Multi-Status',
  300: 'Multiple Choices',
  301: 'Moved Permanently',
  302: 'Found',
  303: 'See Other',
  304: 'Not Modified',
  305: 'Use Proxy',
  307: 'Temporary Redirect',
  308: 'Permanent Redirect',
  400: 'Bad Request',
  401: 'Unauthorized',
  402: 'Payment Required',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  406: 'Not Acceptable',
  407: 'Proxy Authentication Required',
  408: 'Request Timeout',
  409: 'Conflict',
  410: 'Gone',
  411: 'Length Required',
  412: 'Precondition Failed',
  413: 'Request Entity Too Large',
  414: 'Request-URI Too Long',
  415: 'Unsupported Media Type',
  416: 'Requested Range Not Satisfiable',
  417: 'Expectation Failed',
  421: 'Misdirected Request',
  422: 'Unprocessable Entity',
  423: 'Locked',
  424: 'Failed Dependency',
  425: 'Unordered Collection',
  426: 'Upgrade Required',
  428: 'Precondition Required',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
  505: 'HTTP Version Not Supported',
  506: 'Variant Also Negotiates',
  507: 'Insufficient Storage',
  510: 'Not Extended',
  511: 'Network Authentication Required',
};

/** The reason phrase Netty uses for a status: its standard one, else "Server Error (599)" style. */
export function reasonPhrase(status: number): string {
  if (status === 210) return 'Partial Success';
  const known = NETTY_REASONS[status];
  if (known) return known;
  const cls =
    status < 200
      ? 'Informational'
      : status < 300
        ? 'Successful'
        : status < 400
          ? 'Redirection'
          : status < 500
            ? 'Client Error'
            : 'Server Error';
  return `${cls} (${status})`;
}

/** Per-response context shared by the routes: request id and whether the connection may stay open. */
export interface ResponseContext {
  readonly requestId: string;
  /** False when the client asked to close or the server is shutting down. */
  keepAlive: boolean;
  /** Called when the connection closes before the response was finished (a route withdraws its queued job). */
  onAbort?: (() => void) | null;
  /** The model version a route resolved (for the access record, logger.ts). */
  model?: { readonly name: string; readonly version: string };
}

export function newRequestId(): string {
  return randomUUID();
}

/**
 * Writes a complete response with MMS's headers (x-request-id, no-cache trio, content-length, connection).
 * `connection: close` (and closing the socket) for every status >= 400, as MMS does.
 */
export function sendResponse(
  res: ServerResponse,
  ctx: ResponseContext,
  status: number,
  phrase: string,
  contentType: string | null,
  body: Buffer | string,
  extraHeaders: readonly (readonly [string, string])[] = [],
): void {
  if (res.headersSent || res.destroyed) return;
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const headers: string[] = [];
  if (contentType !== null) headers.push('content-type', contentType);
  for (const [k, v] of extraHeaders) headers.push(k, v);
  const close = status >= 400 || !ctx.keepAlive;
  // one push of the fixed names (no spread: every response pays for this)
  headers.push(
    'x-request-id',
    ctx.requestId,
    'pragma',
    NO_CACHE,
    'cache-control',
    CACHE_CONTROL,
    'expires',
    EXPIRES,
    'content-length',
    String(bytes.length),
    'connection',
    close ? 'close' : 'keep-alive',
  );
  res.writeHead(status, phrase, headers);
  // A small body as a latin1 string (byte for byte the same): node appends it to the header text and writes one
  // string, where a Buffer is written beside the header with writev.
  if (bytes.length <= SMALL_BODY_BYTES) res.end(bytes.toString('latin1'), 'latin1');
  else res.end(bytes);
}

/** Up to this size a body is sent in one write with the header (see sendResponse). */
const SMALL_BODY_BYTES = 1024;

/** 2xx JSON answer (`{"status": ...}` and friends). */
export function sendJson(res: ServerResponse, ctx: ResponseContext, status: number, value: unknown): void {
  sendResponse(res, ctx, status, reasonPhrase(status), 'application/json', toMmsJson(value));
}

/** `{"status": msg}` with the given status (200, 202, 210). */
export function sendStatus(res: ServerResponse, ctx: ResponseContext, message: string, status = 200): void {
  sendJson(res, ctx, status, { status: message });
}

/** Error body `{"code","type","message"}` from a MarError (or a logged 500 for anything else). */
export function sendError(res: ServerResponse, ctx: ResponseContext, err: unknown, log?: (msg: string) => void): void {
  let status: number;
  let type: string;
  let message: string;
  if (isMarError(err)) {
    status = err.httpStatus;
    type = err.type;
    message = err.message;
  } else {
    status = 500;
    type = 'InternalServerException';
    message = 'Internal server error';
    log?.(`unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  }
  sendResponse(res, ctx, status, reasonPhrase(status), 'application/json', toMmsJson({ code: status, type, message }));
}

/**
 * 413 for a body over max_request_size, sent as soon as that is known (the connection guard then drains the
 * rest of the body so the client reads it). Netty's HttpObjectAggregator sends it without a body; ours has
 * MMS's error body, so a client can tell why.
 */
export function sendTooLarge(res: ServerResponse, maxRequestBytes: number): void {
  const err = new MarError(
    'REQUEST_TOO_LARGE',
    `The request body is larger than max_request_size (${maxRequestBytes} bytes); send a smaller one or raise max_request_size.`,
  );
  sendError(res, { requestId: newRequestId(), keepAlive: false }, err);
}

export const notFound = (): MarError =>
  new MarError('RESOURCE_NOT_FOUND', 'Requested resource is not found, please refer to API document.');
export const methodNotAllowed = (): MarError =>
  new MarError('METHOD_NOT_ALLOWED', 'Requested method is not allowed, please refer to API document.');
export const modelNotFound = (name: string): MarError => new MarError('MODEL_NOT_FOUND', `Model not found: ${name}`);
export const badRequest = (message: string): MarError => new MarError('BAD_REQUEST', message);
export const internalError = (message: string, status = 500): MarError => new MarError('INTERNAL', message, { httpStatus: status });
