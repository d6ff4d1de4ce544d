import { lstat, unlink } from 'node:fs/promises';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { MarError } from '../errors.js';
import type { ApiContext } from './api-context.js';
import type { ListenAddress } from './config.js';
import { connectionServerOptions, guardConnections, type RequestGuard } from './connection-guard.js';
import { listApis } from './openapi.js';
import { parseUrl, readBody } from './request-parser.js';
import type { ResponseContext } from './responses.js';
import { methodNotAllowed, newRequestId, notFound, sendError, sendJson, sendTooLarge } from './responses.js';
import { handleInference, isInferenceRequest } from './routes/inference.js';
import { handleKServe, isKServeRequest } from './routes/kserve.js';
import { handleManagement, isManagementRequest } from './routes/management.js';
import { handleMetrics } from './routes/metrics.js';
import { handleToken, isTokenRequest } from './routes/token.js';
import { createListenerServer } from './tls.js';

export interface ApiSet {
  inference: boolean;
  management: boolean;
  /** TorchServe's metrics API, alone on its listener (metrics_address). */
  metrics?: boolean;
}

/** The end functions of a connection's requests in flight, run if the connection closes first (see #onRequest). */
const kInFlight = Symbol('mar.requestsInFlight');
type TrackedSocket = Socket & { [kInFlight]?: Array<() => void> };

/** Adds a request's end to its connection's list: one 'close' listener per connection, not one per request. */
function trackOnSocket(socket: TrackedSocket, end: () => void): void {
  let open = socket[kInFlight];
  if (open === undefined) {
    const list: Array<() => void> = [];
    open = socket[kInFlight] = list;
    socket.once('close', () => {
      for (const fn of list.slice()) fn();
    });
  }
  open.push(end);
}

function untrackOnSocket(socket: TrackedSocket, end: () => void): void {
  const open = socket[kInFlight];
  if (open === undefined) return;
  const last = open.pop();
  if (last !== undefined && last !== end) {
    const i = open.indexOf(end);
    if (i >= 0) open[i] = last;
    else open.push(last);
  }
}

function isKeepAlive(req: IncomingMessage): boolean {
  const raw = req.headers.connection;
  // most clients send it lower-case already: no toLowerCase then
  const conn = raw === undefined || raw === 'keep-alive' || raw === 'close' ? raw : raw.toLowerCase();
  if (req.httpVersionMajor === 1 && req.httpVersionMinor === 0) return conn === 'keep-alive';
  return conn !== 'close';
}

/**
 * One node:http listener serving the inference API, the management API, or both (when both addresses are
 * equal), with MMS's handler chain: api-description -> inference -> management -> 404.
 */
export class HttpListener {
  readonly apis: ApiSet;
  readonly #api: ApiContext;
  readonly #address: ListenAddress;
  readonly #server: Server;
  #closing = false;
  #active = 0;
  #idleWaiter: (() => void) | null = null;
  #boundUrl: string | null = null;

  constructor(api: ApiContext, address: ListenAddress, apis: ApiSet) {
    this.#api = api;
    this.#address = address;
    this.apis = apis;
    // Netty answers requests without a Host header (HTTP/1.1 clients written by hand often omit it); node would 400
    // https when the address says so (tls.ts)
    const tls = address.kind === 'tcp' && address.tls ? api.config.tls : null;
    const limits = api.config.connectionLimits;
    let guard: RequestGuard | null = null;
    this.#server = createListenerServer(tls, { ...connectionServerOptions(limits), requireHostHeader: false }, (req, res) => {
      guard!(req, res);
      this.#onRequest(req, res);
    });
    // timeouts (408), header size (431), connection cap, and early answers that reach a client still sending
    guard = guardConnections(this.#server, limits);
    // `Expect: 100-continue` (curl does it for large uploads): refuse an oversized body before it is sent
    this.#server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
      guard!(req, res);
      if (Number(req.headers['content-length']) > api.config.maxRequestSize) {
        sendTooLarge(res, api.config.maxRequestSize);
        return;
      }
      res.writeContinue();
      this.#onRequest(req, res);
    });
  }

  /** The address actually bound (the real port when 0 was asked for). */
  get url(): string {
    return this.#boundUrl ?? this.#address.url;
  }

  get activeRequests(): number {
    return this.#active;
  }

  async listen(): Promise<string> {
    const a = this.#address;
    if (a.kind === 'unix') {
      // a stale socket file from a crashed server would make listen fail with EADDRINUSE
      const st = await lstat(a.path).catch(() => null);
      if (st?.isSocket()) await unlink(a.path).catch(() => {});
    }
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        reject(
          new MarError(
            'INPUT_INVALID',
            `cannot listen on ${a.url}: ${err.code === 'EADDRINUSE' ? 'address already in use' : err.message}; change inference_address/management_address`,
            { cause: err },
          ),
        );
      };
      this.#server.once('error', onError);
      const done = (): void => {
        this.#server.off('error', onError);
        resolve();
      };
      if (a.kind === 'unix') this.#server.listen(a.path, done);
      else this.#server.listen(a.port, a.host, done);
    });
    if (a.kind === 'tcp') {
      const port = (this.#server.address() as AddressInfo).port;
      const host = a.host.includes(':') ? `[${a.host}]` : a.host;
      this.#boundUrl = `${a.tls ? 'https' : 'http'}://${host}:${port}`;
    } else {
      this.#boundUrl = a.url;
    }
    return this.#boundUrl;
  }

  /** Stops accepting connections, lets active requests finish (up to graceMs), then drops what is left. */
  async close(graceMs: number): Promise<void> {
    this.#closing = true;
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeIdleConnections();
    if (this.#active > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(finish, graceMs);
        function finish(): void {
          clearTimeout(timer);
          resolve();
        }
        this.#idleWaiter = finish;
      });
    }
    this.#idleWaiter = null;
    this.#server.closeAllConnections();
    await closed;
  }

  #onRequest(req: IncomingMessage, res: ServerResponse): void {
    this.#active++;
    const rc: ResponseContext = { requestId: newRequestId(), keepAlive: !this.#closing && isKeepAlive(req), onAbort: null };
    // one function per request does all the bookkeeping (no AbortController: measurably slow per request).
    // A pipelined request queued behind a response that closed the connection (any status >= 400) never
    // gets 'close' on its response, so the socket's 'close' ends it too (else shutdown waited the whole grace).
    const socket = req.socket as TrackedSocket;
    // null unless something records requests (access_log.log, log_format=json): then no clock read per request
    const access = this.#api.logger.access;
    const started = access ? performance.now() : 0;
    // read now: a closed socket no longer knows its peer
    const remote = access ? `${socket.remoteAddress ?? ''}:${socket.remotePort ?? ''}` : '';
    let ended = false;
    const end = (): void => {
      if (ended) return;
      ended = true;
      untrackOnSocket(socket, end);
      if (access && res.headersSent) {
        access({
          remote,
          method: req.method ?? '',
          url: req.url ?? '',
          httpVersion: req.httpVersion,
          status: res.statusCode,
          latencyMs: performance.now() - started,
          requestId: rc.requestId,
          model: rc.model?.name,
          version: rc.model?.version,
        });
      }
      if (res.headersSent) this.#api.metrics?.countResponse(res.statusCode);
      this.#active--;
      if (rc.onAbort && !res.writableFinished) rc.onAbort();
      if (this.#closing) {
        this.#server.closeIdleConnections();
        if (this.#active === 0) this.#idleWaiter?.();
      }
    };
    res.on('close', end);
    trackOnSocket(socket, end);
    res.sendDate = false;
    // callbacks, not async functions, from the request to the worker: every request pays for each promise
    readBody(req, this.#api.config.maxRequestSize, (err, body) => {
      if (err) return this.#failed(res, rc, err);
      if (body === null) return sendTooLarge(res, this.#api.config.maxRequestSize);
      if (this.#closing) rc.keepAlive = false;
      let answered: Promise<void> | undefined;
      try {
        answered = this.#dispatch(req, res, rc, body);
      } catch (e) {
        return this.#failed(res, rc, e);
      }
      answered?.then(undefined, (e: unknown) => this.#failed(res, rc, e));
    });
  }

  /** A request that failed before its answer: MMS's error answer, unless nobody is left to read it. */
  #failed(res: ServerResponse, rc: ResponseContext, err: unknown): void {
    // the client went away while sending its body: nobody to answer, nothing to log
    if ((err as NodeJS.ErrnoException | null)?.code === 'ECONNRESET') return;
    sendError(res, rc, err, this.#api.log);
  }

  /** Routes a request whose body has arrived; a route answers now or when its promise settles (errors: the caller's). */
  #dispatch(req: IncomingMessage, res: ServerResponse, rc: ResponseContext, body: Buffer): Promise<void> | undefined {
    const url = parseUrl(req.url);
    const { segments } = url;
    if (this.apis.metrics) return handleMetrics(this.#api, res, rc, url);
    if (segments.length === 0 || (segments.length >= 2 && segments[1] === 'api-description')) {
      if ((url.path === '/' && req.method === 'OPTIONS') || (segments.length === 2 && segments[1] === 'api-description')) {
        sendJson(res, rc, 200, listApis(this.apis));
        return undefined;
      }
      throw methodNotAllowed();
    }
    // token authorization (TorchServe dialect, auth.ts): each API checks its own key
    const auth = this.#api.auth;
    if (this.apis.inference && isInferenceRequest(segments)) {
      auth?.authorize(req, 'inference');
      return handleInference(this.#api, req, res, rc, url, body);
    }
    // KServe v1 and the Open Inference Protocol (after MMS's paths, as TorchServe: /v2/predict is model v2's legacy predict)
    if (this.apis.inference && isKServeRequest(segments)) return handleKServe(this.#api, req, res, rc, url, body);
    if (auth && this.apis.management && isTokenRequest(segments)) return handleToken(auth, req, res, rc, url);
    if (this.apis.management && isManagementRequest(segments)) {
      auth?.authorize(req, 'management');
      return handleManagement(this.#api, req, res, rc, url, body);
    }
    throw notFound();
  }
}
