/**
 * What every gRPC method shares, as the HTTP listener does for routes: the key check (token authorization, as
 * TorchServe's GRPCInterceptor: `authorization: Bearer <key>` metadata), errors as gRPC statuses from the error
 * registry, the client's metadata as request headers, cancellation, and the access log line; for unary,
 * server-streaming and bidirectional-streaming methods.
 */
import type {
  handleBidiStreamingCall,
  handleServerStreamingCall,
  handleUnaryCall,
  Metadata,
  ServerDuplexStream,
  ServerUnaryCall,
  ServerWritableStream,
  ServiceError,
  sendUnaryData,
} from '@grpc/grpc-js';
import { GRPC_STATUS, isMarError, MarError } from '../../errors.js';
import type { ApiContext } from '../api-context.js';
import type { TokenKind } from '../auth.js';
import { newRequestId } from '../responses.js';

/** One call's facts for the data plane (see oip/dataplane.ts CallContext). */
export interface GrpcCall {
  requestId: string;
  headers: Array<[string, string]>;
  onCancel: (cancel: (() => void) | null) => void;
}

/** The status and details a MarError (or anything else: a logged INTERNAL) fails a call with. */
export function toServiceError(err: unknown, log: (msg: string) => void): Partial<ServiceError> {
  if (isMarError(err)) return { code: GRPC_STATUS[err.grpcStatus], details: err.message };
  log(`unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  return { code: GRPC_STATUS.INTERNAL, details: 'Internal server error' };
}

/** Text metadata as request headers (binary `-bin` entries are left out), in the order sent. */
export function metadataHeaders(metadata: Metadata): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const [k, v] of Object.entries(metadata.getMap())) if (typeof v === 'string') out.push([k, v]);
  return out;
}

export interface UnaryOptions {
  /** Which key the method needs when token authorization is on; null: none (liveness and readiness). */
  key: TokenKind | null;
}

/** What every kind of call has: its path, peer and metadata. */
type AnyCall = Pick<ServerUnaryCall<unknown, unknown>, 'getPeer' | 'getPath' | 'metadata'>;

/** A call begun: its facts for the handler, and `log` for its one access log line (when it ends). */
interface Begun {
  call: GrpcCall;
  /** Withdraws what the call waits for (the client cancelled). */
  cancel: () => void;
  log: (grpcStatus: number, httpStatus: number) => void;
}

function begin(api: ApiContext, call: AnyCall): Begun {
  const started = performance.now();
  const requestId = newRequestId();
  let cancel: (() => void) | null = null;
  return {
    call: {
      requestId,
      headers: metadataHeaders(call.metadata),
      onCancel: (c) => {
        cancel = c;
      },
    },
    cancel: () => cancel?.(),
    log: (grpcStatus, httpStatus) =>
      api.logger.access?.({
        remote: call.getPeer(),
        method: 'gRPC',
        url: call.getPath(),
        httpVersion: '2',
        status: httpStatus,
        grpcStatus,
        latencyMs: performance.now() - started,
        requestId,
      }),
  };
}

/** The key check of token authorization (TorchServe's GRPCInterceptor); throws TOKEN_INVALID. */
function authorize(api: ApiContext, call: AnyCall, key: TokenKind | null): void {
  if (key === null || !api.auth) return;
  const header = call.metadata.get('authorization')[0];
  api.auth.authorizeHeader(typeof header === 'string' ? header : undefined, key);
}

/** Ends a call with an error's status (nothing for REQUEST_CANCELLED: nobody is left to answer). */
function fail(api: ApiContext, b: Begun, err: unknown, reply: (e: ServiceError) => void): void {
  if (isMarError(err) && err.code === 'REQUEST_CANCELLED') return;
  const e = toServiceError(err, api.log);
  reply(e as ServiceError);
  b.log(e.code ?? GRPC_STATUS.UNKNOWN, isMarError(err) ? err.httpStatus : 500);
}

/**
 * A unary method: checks the key, runs `fn` with the call's facts, answers its result or the error's status. A call
 * the client cancels withdraws its queued job (REQUEST_CANCELLED is then answered to nobody).
 */
export function unary<Req, Res>(
  api: ApiContext,
  options: UnaryOptions,
  fn: (request: Req, call: GrpcCall) => Res | Promise<Res>,
): handleUnaryCall<Req, Res> {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => {
    const b = begin(api, call);
    call.on('cancelled', b.cancel);
    void (async () => {
      try {
        authorize(api, call, options.key);
        const result = await fn(call.request, b.call);
        callback(null, result);
        b.log(GRPC_STATUS.OK, 200);
      } catch (err) {
        fail(api, b, err, (e) => callback(e));
      }
    })();
  };
}

/**
 * A streaming call's frame: checks the key, runs `body`, then ends the call OK (nothing once the client cancelled),
 * or with the error's status when `body` throws.
 */
function streamCall<Req, Res>(
  api: ApiContext,
  call: ServerWritableStream<Req, Res> | ServerDuplexStream<Req, Res>,
  key: TokenKind | null,
  body: (b: Begun, cancelled: () => boolean) => Promise<void>,
): void {
  const b = begin(api, call);
  let cancelled = false;
  call.on('cancelled', () => {
    cancelled = true;
    b.cancel();
  });
  void (async () => {
    try {
      authorize(api, call, key);
      await body(b, () => cancelled);
      if (cancelled) return;
      call.end();
      b.log(GRPC_STATUS.OK, 200);
    } catch (err) {
      fail(api, b, err, (e) => call.emit('error', e)); // grpc-js: the error event sends the status
    }
  })();
}

/**
 * A server-streaming method: as `unary`, but `fn` sends each message with `send`; the call ends (OK) when it
 * resolves, or with the error's status when it throws.
 */
export function serverStreaming<Req, Res>(
  api: ApiContext,
  options: UnaryOptions,
  fn: (request: Req, call: GrpcCall, send: (message: Res) => void) => Promise<void>,
): handleServerStreamingCall<Req, Res> {
  return (call: ServerWritableStream<Req, Res>) =>
    streamCall(api, call, options.key, (b) => fn(call.request, b.call, (m) => call.write(m)));
}

/**
 * A bidirectional-streaming method: the key is checked once, then each request the client sends is handed to `fn`
 * in turn (the next waits for the one before: answers keep the order of requests); `fn` answers with `send` and
 * handles its own errors. The call ends (OK) once the client has finished sending and every request is answered.
 */
export function bidiStreaming<Req, Res>(
  api: ApiContext,
  options: UnaryOptions,
  fn: (request: Req, call: GrpcCall, send: (message: Res) => void) => Promise<void>,
): handleBidiStreamingCall<Req, Res> {
  return (call: ServerDuplexStream<Req, Res>) =>
    streamCall(api, call, options.key, async (b, cancelled) => {
      // the iterator must not destroy the call when the client's stream ends: the status is still to be sent
      for await (const request of call.iterator({ destroyOnReturn: false }) as AsyncIterable<Req>) {
        if (cancelled()) return;
        await fn(request, { ...b.call, requestId: newRequestId() }, (m) => call.write(m));
      }
    });
}

/** BAD_REQUEST for a required field left empty (proto3 cannot tell empty from absent). */
export function required(value: string, field: string): string {
  if (value === '') throw new MarError('BAD_REQUEST', `${field} is required`);
  return value;
}
