/**
 * What every gRPC method shares, as the HTTP listener does for routes: the key check (token authorization, as
 * TorchServe's GRPCInterceptor: `authorization: Bearer <key>` metadata), errors as gRPC statuses from the error
 * registry, the client's metadata as request headers, cancellation, and the access log line.
 */
import type { handleUnaryCall, Metadata, ServerUnaryCall, ServiceError, sendUnaryData } from '@grpc/grpc-js';
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
    const started = performance.now();
    const requestId = newRequestId();
    let cancel: (() => void) | null = null;
    call.on('cancelled', () => cancel?.());
    const done = (code: number, httpStatus: number, reply: () => void): void => {
      reply();
      api.logger.access?.({
        remote: call.getPeer(),
        method: 'gRPC',
        url: call.getPath(),
        httpVersion: '2',
        status: httpStatus,
        grpcStatus: code,
        latencyMs: performance.now() - started,
        requestId,
      });
    };
    void (async () => {
      try {
        if (options.key !== null && api.auth) {
          const header = call.metadata.get('authorization')[0];
          api.auth.authorizeHeader(typeof header === 'string' ? header : undefined, options.key);
        }
        const result = await fn(call.request, {
          requestId,
          headers: metadataHeaders(call.metadata),
          onCancel: (c) => {
            cancel = c;
          },
        });
        done(GRPC_STATUS.OK, 200, () => callback(null, result));
      } catch (err) {
        if (isMarError(err) && err.code === 'REQUEST_CANCELLED') return;
        const e = toServiceError(err, api.log);
        done(e.code ?? GRPC_STATUS.UNKNOWN, isMarError(err) ? err.httpStatus : 500, () => callback(e as ServiceError));
      }
    })();
  };
}

/** BAD_REQUEST for a required field left empty (proto3 cannot tell empty from absent). */
export function required(value: string, field: string): string {
  if (value === '') throw new MarError('BAD_REQUEST', `${field} is required`);
  return value;
}
