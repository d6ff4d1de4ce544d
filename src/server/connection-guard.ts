/**
 * What one HTTP listener does about its connections, before and after a request reaches a route: clients that
 * send too slowly (408) or too much header (431), idle keep-alive connections, a cap on how many are open, and
 * answers sent before the request was read whole (a 413, or any early error) reaching a client that is still
 * sending. Nothing here touches the model registry: a stalled or abusive client never holds a worker or a
 * queue slot, because a route only runs once its whole body has arrived.
 */
import type { IncomingMessage, Server, ServerOptions, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { MarError } from '../errors.js';
import { newRequestId, reasonPhrase, toMmsJson } from './responses.js';

/** The connection settings of a listener (config keys in parentheses; docs/server.md lists their defaults). */
export interface ConnectionLimits {
  /** Time a client has to send a request's headers, ms (request_header_timeout); 0 = no limit. */
  headerTimeoutMs: number;
  /** Time a client has to send a whole request, headers and body, ms (request_body_timeout); 0 = no limit. */
  requestTimeoutMs: number;
  /** How long an idle keep-alive connection stays open, ms (keep_alive_timeout); 0 = until the client closes. */
  keepAliveTimeoutMs: number;
  /** Most connections open at once per listener (max_connections); one more is closed at once. 0 = no cap. */
  maxConnections: number;
  /** Largest request line plus headers, bytes (max_header_size); more is answered 431. */
  maxHeaderBytes: number;
  /** max_request_size: how much of an unread body is drained after an early answer is derived from it. */
  maxRequestBytes: number;
}

/** After an early answer, at most this long is spent reading (and discarding) the rest of the body. */
export const DRAIN_TIMEOUT_MS = 5_000;
/** ... and at most this many bytes, or 2 x max_request_size when that is smaller. */
export const DRAIN_MAX_BYTES = 64 << 20;

/** How many body bytes are read and discarded after an early answer before the connection is simply closed. */
export function drainBound(maxRequestBytes: number): number {
  return Math.min(2 * maxRequestBytes, DRAIN_MAX_BYTES);
}

/** How often node checks the header and request deadlines: often enough that a cut-off comes within ~1 s of them. */
function checkingInterval(limits: ConnectionLimits): number {
  const shortest = Math.min(...[limits.headerTimeoutMs, limits.requestTimeoutMs].filter((t) => t > 0), 4_000);
  return Math.max(50, Math.floor(shortest / 4));
}

/** A complete error answer written straight to a socket (no request object exists yet, or it timed out). */
function rawAnswer(err: MarError): Buffer {
  const status = err.httpStatus;
  const body = Buffer.from(toMmsJson({ code: status, type: err.type, message: err.message }), 'utf8');
  const head =
    `HTTP/1.1 ${status} ${reasonPhrase(status)}\r\ncontent-type: application/json\r\nx-request-id: ${newRequestId()}\r\n` +
    `content-length: ${body.length}\r\nconnection: close\r\n\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), body]);
}

const seconds = (ms: number): string => `${ms / 1000} s`;

/** Per connection: the request being received or answered last (for clientError). */
interface ConnectionState {
  req: IncomingMessage;
  res: ServerResponse;
}

/** Where a socket keeps its ConnectionState (a property, updated per request: cheaper than a WeakMap entry). */
const kState = Symbol('mar.connectionState');
/** On a response to `Expect: 100-continue` while no 100 was sent: the client holds its body back, nothing to drain. */
const kHeldBack = Symbol('mar.bodyHeldBack');
type GuardedSocket = Socket & { [kState]?: ConnectionState };
type GuardedResponse = ServerResponse & { [kHeldBack]?: boolean };

/** The createServer options that carry the limits (node enforces the deadlines and the header size itself). */
export function connectionServerOptions(limits: ConnectionLimits): ServerOptions {
  const { headerTimeoutMs: h, requestTimeoutMs: r } = limits;
  return {
    // node refuses a header deadline past the whole-request one; the whole request then ends first anyway
    headersTimeout: r > 0 && h > r ? r : h,
    requestTimeout: r,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    maxHeaderSize: limits.maxHeaderBytes,
    connectionsCheckingInterval: checkingInterval(limits),
  };
}

/** What the listener calls first for every request (and every `Expect: 100-continue` one), before answering it. */
export type RequestGuard = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * Applies the rest of the limits to a listener's server, created with connectionServerOptions(limits), and returns
 * the per-request part, which the server's 'request' and 'checkContinue' handlers call first (a call, not a second
 * listener: an event with two listeners copies its listener array on every emit).
 */
export function guardConnections(server: Server, limits: ConnectionLimits): RequestGuard {
  // node closes a connection over the cap before reading a byte of it (the client sees it closed)
  if (limits.maxConnections > 0) server.maxConnections = limits.maxConnections;
  const bound = drainBound(limits.maxRequestBytes);
  // one listener for every response (no closure per request): an answer that goes out before its body was read
  function onPrefinish(this: GuardedResponse): void {
    const req = this.req;
    if (!req.complete && !this[kHeldBack]) drainAfterAnswer(req, this, req.socket, bound);
  }

  server.on('connection', (socket: Socket) => {
    // node's header deadline starts with the first byte: a connection that never sends one is cut off here
    if (limits.headerTimeoutMs <= 0) return;
    const timer = setTimeout(() => {
      if (socket.bytesRead === 0) socket.destroy();
    }, limits.headerTimeoutMs);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
  });

  const onRequest = (req: IncomingMessage, res: GuardedResponse): void => {
    // keyed by the socket requests arrive on (with TLS, not the one 'connection' reports)
    const socket = req.socket as GuardedSocket;
    const state = socket[kState];
    if (state === undefined) socket[kState] = { req, res };
    else {
      state.req = req;
      state.res = res;
    }
    // `Expect: 100-continue` refused without a 100: the client never sends the body, there is nothing to drain
    const expect = req.headers.expect;
    if (expect !== undefined && /100-continue/i.test(expect)) {
      res[kHeldBack] = true;
      const writeContinue = res.writeContinue.bind(res);
      res.writeContinue = (cb?: () => void): void => {
        res[kHeldBack] = false;
        writeContinue(cb);
      };
    }
    res.on('prefinish', onPrefinish);
  };

  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    const state = (socket as GuardedSocket)[kState];
    // the request on the wire already has (part of) an answer: an early one being drained, or one being written;
    // after a finished exchange on a keep-alive connection the next request has none yet
    const answered = state?.res.headersSent && !(state.req.complete && state.res.writableFinished);
    if (socket.writable && !answered && err.code !== 'ECONNRESET') {
      socket.write(rawAnswer(clientErrorOf(err, state, limits)));
    }
    socket.destroy();
  });
  return onRequest;
}

/** The answer for a connection node's parser gave up on, as MMS would word it where MMS has an answer. */
function clientErrorOf(err: NodeJS.ErrnoException, state: ConnectionState | undefined, limits: ConnectionLimits): MarError {
  switch (err.code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT': {
      const inBody = state !== undefined && !state.req.complete;
      return new MarError(
        'REQUEST_TIMEOUT',
        inBody
          ? `The request was not received within ${seconds(limits.requestTimeoutMs)}; send it faster or raise request_body_timeout.`
          : `The request headers were not received within ${seconds(limits.headerTimeoutMs)}; send them faster or raise request_header_timeout.`,
      );
    }
    case 'HPE_HEADER_OVERFLOW':
      return new MarError(
        'HEADERS_TOO_LARGE',
        `The request line and headers are larger than ${limits.maxHeaderBytes} bytes; send fewer or shorter headers, or raise max_header_size.`,
      );
    default:
      // Netty's decoder failure, as MMS and TorchServe answer it
      return new MarError('BAD_REQUEST', 'Invalid HTTP message.');
  }
}

/**
 * An answer went out before the request body was read whole (over max_request_size, or an early error). A
 * client that writes its whole body before reading (Python's http.client) would get a broken pipe, or lose the
 * answer to a TCP reset, if the connection closed now: read and discard the rest of the body first, up to
 * `bound` bytes and DRAIN_TIMEOUT_MS, then close. Past either bound the connection is closed at once.
 */
function drainAfterAnswer(req: IncomingMessage, res: ServerResponse, socket: Socket, bound: number): void {
  // node would close the socket right after this response (connection: close), with the body still arriving;
  // the close is ours now, once the body is read
  (res as ServerResponse & { _last: boolean })._last = false;
  let left = bound;
  const timer = setTimeout(() => socket.destroy(), DRAIN_TIMEOUT_MS);
  timer.unref();
  const stop = (): void => clearTimeout(timer);
  socket.once('close', stop);
  req.on('data', (chunk: Buffer) => {
    left -= chunk.length;
    if (left < 0) socket.destroy();
  });
  req.once('end', () => {
    stop();
    // everything the client sent has been read: closing now sends a clean FIN after the answer, not a reset
    socket.destroySoon();
  });
  req.once('error', () => socket.destroy());
  req.resume();
}
