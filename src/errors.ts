/**
 * One registry for every error that crosses a module boundary: its code decides the CLI exit code,
 * the HTTP status, the MMS exception `type` and the gRPC status a client sees, so the CLI and the servers never disagree.
 */

/** gRPC's status codes (grpc/status.h; @grpc/grpc-js `status`), by name: errors.ts stays free of the gRPC library. */
export const GRPC_STATUS = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

export type GrpcStatusName = keyof typeof GRPC_STATUS;

export interface ErrorSpec {
  /** Process exit code for the CLIs: 1 for errors, 2 for usage errors (as MMS's archiver). */
  exitCode: 1 | 2;
  /** HTTP status the servers answer with. */
  httpStatus: number;
  /** The Java exception simple name MMS puts in `type`. */
  type: string;
  /** The status a gRPC call fails with (without one: TorchServe's mapping of httpStatus, grpcStatusForHttp). */
  grpcStatus: GrpcStatusName;
}

const spec = (
  exitCode: 1 | 2,
  httpStatus: number,
  type: string,
  grpcStatus: GrpcStatusName = grpcStatusForHttp(httpStatus),
): ErrorSpec => ({
  exitCode,
  httpStatus,
  type,
  grpcStatus,
});

export const ERROR_CODES = {
  // usage
  USAGE: spec(2, 400, 'BadRequestException', 'INVALID_ARGUMENT'),
  // archive creation / reading
  INPUT_NOT_FOUND: spec(1, 404, 'ModelNotFoundException', 'NOT_FOUND'),
  INPUT_INVALID: spec(1, 400, 'BadRequestException', 'INVALID_ARGUMENT'),
  NAME_INVALID: spec(1, 400, 'BadRequestException', 'INVALID_ARGUMENT'),
  HANDLER_NOT_FOUND: spec(1, 400, 'InvalidModelException', 'INVALID_ARGUMENT'),
  ENTRY_COLLISION: spec(1, 400, 'BadRequestException', 'INVALID_ARGUMENT'),
  SYMLINK_DANGLING: spec(1, 400, 'BadRequestException', 'INVALID_ARGUMENT'),
  SYMLINK_CYCLE: spec(1, 400, 'BadRequestException', 'INVALID_ARGUMENT'),
  OUTPUT_EXISTS: spec(1, 409, 'ConflictStatusException', 'ALREADY_EXISTS'),
  OUTPUT_FAILED: spec(1, 500, 'InternalServerException', 'INTERNAL'),
  ARCHIVE_CORRUPT: spec(1, 400, 'InvalidModelException', 'INVALID_ARGUMENT'),
  ARCHIVE_UNSAFE: spec(1, 400, 'InvalidModelException', 'INVALID_ARGUMENT'),
  ARCHIVE_LIMIT: spec(1, 400, 'InvalidModelException', 'INVALID_ARGUMENT'),
  ARCHIVE_UNSUPPORTED: spec(1, 400, 'InvalidModelException', 'INVALID_ARGUMENT'),
  VERIFY_FAILED: spec(1, 400, 'InvalidModelException', 'INVALID_ARGUMENT'),
  MANIFEST_MISSING: spec(1, 400, 'InvalidModelException', 'INVALID_ARGUMENT'),
  MANIFEST_INVALID: spec(1, 400, 'InvalidModelException', 'INVALID_ARGUMENT'),
  CONFIG_INVALID: spec(1, 400, 'InvalidModelException', 'INVALID_ARGUMENT'),
  // runtime
  RUNTIME_UNSUPPORTED: spec(1, 400, 'BadRequestException', 'INVALID_ARGUMENT'),
  WORKER_START_FAILED: spec(1, 500, 'InternalServerException', 'INTERNAL'),
  WORKER_LOAD_FAILED: spec(1, 500, 'InternalServerException', 'INTERNAL'),
  WORKER_DIED: spec(1, 500, 'InternalServerException', 'INTERNAL'),
  // a worker killed from outside (exit 137, or SIGKILL we did not send: the OOM killer); MMS answers its batch 507
  WORKER_OUT_OF_MEMORY: spec(1, 507, 'InternalServerException', 'RESOURCE_EXHAUSTED'),
  WORKER_TIMEOUT: spec(1, 500, 'InternalServerException', 'INTERNAL'),
  FRAME_TOO_LARGE: spec(1, 500, 'InternalServerException', 'INTERNAL'),
  FRAME_CORRUPT: spec(1, 500, 'InternalServerException', 'INTERNAL'),
  PREDICTION_FAILED: spec(1, 503, 'InternalServerException', 'UNAVAILABLE'),
  // server
  MODEL_NOT_FOUND: spec(1, 404, 'ModelNotFoundException', 'NOT_FOUND'),
  RESOURCE_NOT_FOUND: spec(1, 404, 'ResourceNotFoundException', 'NOT_FOUND'),
  METHOD_NOT_ALLOWED: spec(1, 405, 'MethodNotAllowedException', 'UNIMPLEMENTED'),
  MODEL_CONFLICT: spec(1, 409, 'ConflictStatusException', 'ALREADY_EXISTS'),
  // model versions (TorchServe's exceptions and statuses)
  VERSION_NOT_FOUND: spec(1, 404, 'ModelVersionNotFoundException', 'NOT_FOUND'),
  DEFAULT_VERSION_IN_USE: spec(1, 403, 'InvalidModelVersionException', 'FAILED_PRECONDITION'),
  BAD_REQUEST: spec(1, 400, 'BadRequestException', 'INVALID_ARGUMENT'),
  DOWNLOAD_FAILED: spec(1, 400, 'DownloadModelException', 'INVALID_ARGUMENT'),
  REQUEST_TOO_LARGE: spec(1, 413, 'RequestEntityTooLargeException', 'RESOURCE_EXHAUSTED'),
  // Netty's decoder fails such a request and MMS answers 400 BadRequestException; we say 431 (the status for it)
  HEADERS_TOO_LARGE: spec(1, 431, 'BadRequestException', 'RESOURCE_EXHAUSTED'),
  QUEUE_FULL: spec(1, 503, 'ServiceUnavailableException', 'UNAVAILABLE'),
  SERVICE_UNAVAILABLE: spec(1, 503, 'ServiceUnavailableException', 'UNAVAILABLE'),
  REQUEST_TIMEOUT: spec(1, 408, 'RequestTimeoutException', 'DEADLINE_EXCEEDED'),
  // the client went away (AbortSignal) before its answer; nobody sees the status (nginx's 499)
  REQUEST_CANCELLED: spec(1, 499, 'RequestCancelledException', 'CANCELLED'),
  INTERNAL: spec(1, 500, 'InternalServerException', 'INTERNAL'),
  // TorchServe dialect (issue 12): a missing or wrong `Authorization: Bearer` key; a model's requirements failed to install
  TOKEN_INVALID: spec(1, 400, 'InvalidKeyException', 'PERMISSION_DENIED'),
  MODEL_DEPS_FAILED: spec(1, 400, 'ModelException', 'INVALID_ARGUMENT'),
  // KServe (issue 13): what the model's handler or the server cannot do, e.g. :explain for a handler without explain
  NOT_IMPLEMENTED: spec(1, 501, 'NotImplementedException', 'UNIMPLEMENTED'),
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface MarErrorOptions {
  cause?: unknown;
  /** Extra machine-readable facts (e.g. a list of problems for `verify`). */
  details?: unknown;
  /** Overrides the registry's HTTP status with a code a handler or worker chose; see handlerStatus. */
  httpStatus?: number;
}

/**
 * The one rule for a status chosen by a handler or worker (PredictionException's code, set_response_status, a
 * LOAD or PREDICT reply's code): kept when an HTTP response can carry it (an integer from 100 to 999, as MMS
 * passes any code on), else 500. So 42, 1000, -1 or NaN never reach writeHead.
 */
export function handlerStatus(code: number): number {
  return isHttpStatus(code) ? code : 500;
}

/**
 * TorchServe's gRPC status for an HTTP status (GRPCUtils.getGRPCStatusCode): used for statuses a handler or worker
 * chose, and as the registry's default. 2xx is OK; other 4xx FAILED_PRECONDITION, other 5xx INTERNAL, else UNKNOWN.
 */
export function grpcStatusForHttp(status: number): GrpcStatusName {
  switch (status) {
    case 400:
      return 'INVALID_ARGUMENT';
    case 401:
      return 'UNAUTHENTICATED';
    case 403:
      return 'PERMISSION_DENIED';
    case 404:
      return 'NOT_FOUND';
    case 409:
      return 'ABORTED';
    case 413:
    case 429:
      return 'RESOURCE_EXHAUSTED';
    case 416:
      return 'OUT_OF_RANGE';
    case 499:
      return 'CANCELLED';
    case 501:
      return 'UNIMPLEMENTED';
    case 503:
      return 'UNAVAILABLE';
    case 504:
      return 'DEADLINE_EXCEEDED';
  }
  if (status >= 200 && status < 300) return 'OK';
  if (status >= 400 && status < 500) return 'FAILED_PRECONDITION';
  if (status >= 500 && status < 600) return 'INTERNAL';
  return 'UNKNOWN';
}

/** Whether an HTTP response can carry this status: an integer from 100 to 999 (what node's writeHead accepts). */
export function isHttpStatus(code: number): boolean {
  return Number.isInteger(code) && code >= 100 && code <= 999;
}

/** The only error type that crosses module boundaries. Its message is one line a user can act on. */
export class MarError extends Error {
  readonly code: ErrorCode;
  readonly details: unknown;
  readonly #httpStatus: number | undefined;

  constructor(code: ErrorCode, message: string, options: MarErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'MarError';
    this.code = code;
    this.details = options.details;
    this.#httpStatus = options.httpStatus === undefined ? undefined : handlerStatus(options.httpStatus);
  }

  get exitCode(): 1 | 2 {
    return ERROR_CODES[this.code].exitCode;
  }

  get httpStatus(): number {
    return this.#httpStatus ?? ERROR_CODES[this.code].httpStatus;
  }

  get type(): string {
    return ERROR_CODES[this.code].type;
  }

  /** The gRPC status: the registry's, or TorchServe's mapping of a status a handler or worker chose instead. */
  get grpcStatus(): GrpcStatusName {
    const spec = ERROR_CODES[this.code];
    return this.#httpStatus === undefined || this.#httpStatus === spec.httpStatus ? spec.grpcStatus : grpcStatusForHttp(this.#httpStatus);
  }
}

export function isMarError(err: unknown): err is MarError {
  return err instanceof MarError;
}

/** Wraps an fs/socket error into a MarError, keeping the original as `cause`. */
export function wrapError(code: ErrorCode, message: string, cause: unknown): MarError {
  if (cause instanceof MarError) return cause;
  return new MarError(code, message, { cause });
}

/** A short description of an fs error for one-line messages ("no such file or directory"). */
export function describeFsError(err: unknown): string {
  const e = err as NodeJS.ErrnoException | undefined;
  switch (e?.code) {
    case 'ENOENT':
      return 'no such file or directory';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'ENOTDIR':
      return 'not a directory';
    case 'EISDIR':
      return 'is a directory';
    case 'ENOSPC':
      return 'no space left on device';
    case 'ELOOP':
      return 'too many levels of symbolic links';
    default:
      return e?.message ?? String(err);
  }
}
