import type { IncomingMessage } from 'node:http';
import type { InferenceRequest, RequestParam } from '../runtime/protocol.js';
import { badRequest } from './responses.js';

/** The parts of a request URL the routes use: Java-style path segments and the decoded query. */
export interface ParsedUrl {
  /** The decoded path. */
  path: string;
  /** `path.split('/')` with Java's semantics: trailing empty strings dropped, so `/` gives []. */
  segments: string[];
  query: URLSearchParams;
}

function decodePath(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

/** The query is parsed on first use: /predictions/{model} never reads it (URLSearchParams costs per request). */
class LazyParsedUrl implements ParsedUrl {
  readonly path: string;
  readonly segments: string[];
  readonly #rawQuery: string;
  #query: URLSearchParams | null = null;
  constructor(path: string, segments: string[], rawQuery: string) {
    this.path = path;
    this.segments = segments;
    this.#rawQuery = rawQuery;
  }
  get query(): URLSearchParams {
    this.#query ??= new URLSearchParams(this.#rawQuery);
    return this.#query;
  }
}

export function parseUrl(rawUrl: string | undefined): ParsedUrl {
  const url = rawUrl ?? '/';
  const q = url.indexOf('?');
  const rawPath = q < 0 ? url : url.slice(0, q);
  // most paths have no escapes: skip decodeURIComponent's work (and its try/catch) for them
  const path = rawPath.includes('%') ? decodePath(rawPath) : rawPath;
  const segments = path.split('/');
  while (segments.length > 0 && segments[segments.length - 1] === '') segments.pop();
  return new LazyParsedUrl(path, segments, q < 0 ? '' : url.slice(q + 1));
}

/** The MIME type without parameters, lower-cased (Netty HttpUtil.getMimeType), or null. */
export function mimeType(contentType: string | undefined): string | null {
  if (contentType === undefined) return null;
  const semi = contentType.indexOf(';');
  const mime = (semi < 0 ? contentType : contentType.slice(0, semi)).trim();
  return mime === '' ? null : mime;
}

/** Netty getIntParameter: an integer, or the default when absent or unparsable. */
export function intParam(query: URLSearchParams, name: string, def: number): number {
  const raw = query.get(name);
  if (raw === null) return def;
  return parseJavaInt(raw) ?? def;
}

export function parseJavaInt(raw: string): number | null {
  if (!/^[+-]?\d+$/.test(raw)) return null;
  const n = Number(raw);
  return n >= -2147483648 && n <= 2147483647 ? n : null;
}

/** Java Boolean.parseBoolean: only "true" (any case) is true. */
export function parseJavaBoolean(raw: string | null | undefined): boolean {
  return typeof raw === 'string' && raw.toLowerCase() === 'true';
}

/**
 * Reads the whole body up to `maxBytes` (Netty's HttpObjectAggregator) and calls `done` once: with the body, with
 * null when it is larger (the caller answers the bare 413), or with the request's error. A callback, not a promise:
 * every request pays for this.
 */
export function readBody(req: IncomingMessage, maxBytes: number, done: (err: Error | null, body: Buffer | null) => void): void {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > maxBytes) {
    // after the other 'request' listeners (the connection guard drains what an early answer leaves unread)
    queueMicrotask(() => done(null, null));
    return;
  }
  let first: Buffer | null = null;
  let chunks: Buffer[] | null = null;
  let size = 0;
  let finished = false;
  req.on('data', (chunk: Buffer) => {
    if (finished) return;
    size += chunk.length;
    if (size > maxBytes) {
      finished = true;
      req.pause();
      done(null, null);
      return;
    }
    if (first === null) first = chunk;
    else if (chunks === null) chunks = [first, chunk];
    else chunks.push(chunk);
  });
  req.on('end', () => {
    if (finished) return;
    finished = true;
    done(null, chunks !== null ? Buffer.concat(chunks, size) : (first ?? EMPTY));
  });
  req.on('error', (err) => {
    if (finished) return;
    finished = true;
    done(err, null);
  });
}

const EMPTY = Buffer.alloc(0);

/** Request headers as sent (original case and order). */
export function requestHeaders(req: IncomingMessage): Array<[string, string]> {
  const raw = req.rawHeaders;
  const out: Array<[string, string]> = [];
  for (let i = 0; i + 1 < raw.length; i += 2) out.push([raw[i]!, raw[i + 1]!]);
  return out;
}

/**
 * Builds the handler input like MMS's InferenceRequestHandler#parseRequest: query parameters first (only when
 * `query` is given: /invocations, /models/{m}/invoke, legacy /{m}/predict; every value, grouped by name, no content type),
 * then one entry per form field for multipart/form-data and x-www-form-urlencoded bodies, else the whole body
 * as `body` with the request's MIME type (without parameters).
 */
export function buildInferenceRequest(
  requestId: string,
  req: IncomingMessage,
  body: Buffer,
  query: URLSearchParams | null,
): InferenceRequest {
  const params: RequestParam[] = [];
  if (query !== null) {
    // Netty's QueryStringDecoder.parameters(): names in order of first appearance, each with all its values;
    // MMS sends every value, so a handler sees the last one of a repeated name (the worker builds a dict)
    const grouped = new Map<string, string[]>();
    for (const [name, value] of query) {
      const values = grouped.get(name);
      if (values) values.push(value);
      else grouped.set(name, [value]);
    }
    for (const [name, values] of grouped) {
      for (const value of values) params.push({ name, contentType: null, value: Buffer.from(value, 'utf8') });
    }
  }
  const contentType = req.headers['content-type'];
  const mime = mimeType(contentType);
  const lower = mime?.toLowerCase();
  // without a boundary Netty's isMultipart() is false: the body goes to the handler whole, as `body`
  if (lower === 'multipart/form-data' && multipartBoundary(contentType!) !== null) {
    params.push(...parseMultipart(body, contentType!));
  } else if (lower === 'application/x-www-form-urlencoded') {
    for (const [name, value] of new URLSearchParams(body.toString('utf8'))) {
      params.push({ name, contentType: null, value: Buffer.from(value, 'utf8') });
    }
  } else {
    params.push({ name: 'body', contentType: mime, value: body });
  }
  return { requestId, headers: requestHeaders(req), params };
}

const CRLF = Buffer.from('\r\n');
const HEADER_END = Buffer.from('\r\n\r\n');

/** The boundary parameter of a multipart Content-Type, or null. */
function multipartBoundary(contentType: string): string | null {
  const m = /;\s*boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  return m?.[1] ?? m?.[2] ?? null;
}

/**
 * A strict multipart/form-data parser (RFC 7578). Plain fields get a null content type; file fields keep
 * their part Content-Type (default application/octet-stream), as Netty's decoder reports them.
 */
export function parseMultipart(body: Buffer, contentType: string): RequestParam[] {
  const boundary = multipartBoundary(contentType);
  if (boundary === null) throw badRequest('Invalid multipart/form-data request: missing boundary.');
  const delimiter = Buffer.from(`--${boundary}`);
  const params: RequestParam[] = [];
  let pos = body.indexOf(delimiter);
  if (pos < 0) throw badRequest('Invalid multipart/form-data request: boundary not found.');
  for (;;) {
    pos += delimiter.length;
    // "--" after a delimiter ends the body
    if (body[pos] === 0x2d && body[pos + 1] === 0x2d) break;
    if (body.indexOf(CRLF, pos) !== pos) throw badRequest('Invalid multipart/form-data request: malformed part.');
    pos += 2;
    const headerEnd = body.indexOf(HEADER_END, pos);
    if (headerEnd < 0) throw badRequest('Invalid multipart/form-data request: malformed part headers.');
    const headerText = body.subarray(pos, headerEnd).toString('utf8');
    const contentStart = headerEnd + 4;
    const next = body.indexOf(Buffer.concat([CRLF, delimiter]), contentStart);
    if (next < 0) throw badRequest('Invalid multipart/form-data request: unterminated part.');
    const value = body.subarray(contentStart, next);
    let name: string | null = null;
    let filename: string | null = null;
    let partType: string | null = null;
    for (const line of headerText.split('\r\n')) {
      const colon = line.indexOf(':');
      if (colon < 0) continue;
      const key = line.slice(0, colon).trim().toLowerCase();
      const val = line.slice(colon + 1).trim();
      if (key === 'content-disposition') {
        name = /;\s*name="([^"]*)"/i.exec(val)?.[1] ?? /;\s*name=([^;\s]+)/i.exec(val)?.[1] ?? null;
        filename = /;\s*filename="([^"]*)"/i.exec(val)?.[1] ?? /;\s*filename=([^;\s]+)/i.exec(val)?.[1] ?? null;
      } else if (key === 'content-type') {
        partType = val;
      }
    }
    if (name !== null) {
      params.push({
        name,
        contentType: filename !== null ? (mimeType(partType ?? undefined) ?? 'application/octet-stream') : null,
        value: Buffer.from(value),
      });
    }
    pos = next + 2;
  }
  return params;
}
