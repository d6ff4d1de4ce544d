/**
 * One registry for every error that crosses a module boundary: its code decides the CLI exit code,
 * the HTTP status and the MMS exception `type` a client sees, so the CLI and the server never disagree.
 */

export interface ErrorSpec {
  /** Process exit code for the CLIs: 1 for errors, 2 for usage errors (as MMS's archiver). */
  exitCode: 1 | 2;
  /** HTTP status the servers answer with. */
  httpStatus: number;
  /** The Java exception simple name MMS puts in `type`. */
  type: string;
}

const spec = (exitCode: 1 | 2, httpStatus: number, type: string): ErrorSpec => ({ exitCode, httpStatus, type });

export const ERROR_CODES = {
  // usage
  USAGE: spec(2, 400, 'BadRequestException'),
  // archive creation / reading
  INPUT_NOT_FOUND: spec(1, 404, 'ModelNotFoundException'),
  INPUT_INVALID: spec(1, 400, 'BadRequestException'),
  NAME_INVALID: spec(1, 400, 'BadRequestException'),
  HANDLER_NOT_FOUND: spec(1, 400, 'InvalidModelException'),
  ENTRY_COLLISION: spec(1, 400, 'BadRequestException'),
  SYMLINK_DANGLING: spec(1, 400, 'BadRequestException'),
  SYMLINK_CYCLE: spec(1, 400, 'BadRequestException'),
  OUTPUT_EXISTS: spec(1, 409, 'ConflictStatusException'),
  OUTPUT_FAILED: spec(1, 500, 'InternalServerException'),
  ARCHIVE_CORRUPT: spec(1, 400, 'InvalidModelException'),
  ARCHIVE_UNSAFE: spec(1, 400, 'InvalidModelException'),
  ARCHIVE_LIMIT: spec(1, 400, 'InvalidModelException'),
  ARCHIVE_UNSUPPORTED: spec(1, 400, 'InvalidModelException'),
  VERIFY_FAILED: spec(1, 400, 'InvalidModelException'),
  MANIFEST_MISSING: spec(1, 400, 'InvalidModelException'),
  MANIFEST_INVALID: spec(1, 400, 'InvalidModelException'),
  CONFIG_INVALID: spec(1, 400, 'InvalidModelException'),
  // runtime
  RUNTIME_UNSUPPORTED: spec(1, 400, 'BadRequestException'),
  WORKER_START_FAILED: spec(1, 500, 'InternalServerException'),
  WORKER_LOAD_FAILED: spec(1, 500, 'InternalServerException'),
  WORKER_DIED: spec(1, 500, 'InternalServerException'),
  // a worker killed from outside (exit 137, or SIGKILL we did not send: the OOM killer); MMS answers its batch 507
  WORKER_OUT_OF_MEMORY: spec(1, 507, 'InternalServerException'),
  WORKER_TIMEOUT: spec(1, 500, 'InternalServerException'),
  FRAME_TOO_LARGE: spec(1, 500, 'InternalServerException'),
  FRAME_CORRUPT: spec(1, 500, 'InternalServerException'),
  PREDICTION_FAILED: spec(1, 503, 'InternalServerException'),
  // server
  MODEL_NOT_FOUND: spec(1, 404, 'ModelNotFoundException'),
  RESOURCE_NOT_FOUND: spec(1, 404, 'ResourceNotFoundException'),
  METHOD_NOT_ALLOWED: spec(1, 405, 'MethodNotAllowedException'),
  MODEL_CONFLICT: spec(1, 409, 'ConflictStatusException'),
  // model versions (TorchServe's exceptions and statuses)
  VERSION_NOT_FOUND: spec(1, 404, 'ModelVersionNotFoundException'),
  DEFAULT_VERSION_IN_USE: spec(1, 403, 'InvalidModelVersionException'),
  BAD_REQUEST: spec(1, 400, 'BadRequestException'),
  DOWNLOAD_FAILED: spec(1, 400, 'DownloadModelException'),
  REQUEST_TOO_LARGE: spec(1, 413, 'RequestEntityTooLargeException'),
  // Netty's decoder fails such a request and MMS answers 400 BadRequestException; we say 431 (the status for it)
  HEADERS_TOO_LARGE: spec(1, 431, 'BadRequestException'),
  QUEUE_FULL: spec(1, 503, 'ServiceUnavailableException'),
  SERVICE_UNAVAILABLE: spec(1, 503, 'ServiceUnavailableException'),
  REQUEST_TIMEOUT: spec(1, 408, 'RequestTimeoutException'),
  // the client went away (AbortSignal) before its answer; nobody sees the status (nginx's 499)
  REQUEST_CANCELLED: spec(1, 499, 'RequestCancelledException'),
  INTERNAL: spec(1, 500, 'InternalServerException'),
  // TorchServe dialect (issue 12): a missing or wrong `Authorization: Bearer` key; a model's requirements failed to install
  TOKEN_INVALID: spec(1, 400, 'InvalidKeyException'),
  MODEL_DEPS_FAILED: spec(1, 400, 'ModelException'),
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
