/**
 * The server's log, in one of two formats (config `log_format`): `text`, the readable lines of before (server
 * messages on stdout as `<ISO time> [INFO ] message`, worker lines on stderr as `[model W-id] line`, MMS's access
 * log in access_log.log under log_location), or `json`, one JSON object per line on stdout written by pino, for log
 * shippers: server messages, worker lines and one access record per request, with the fields a shipper indexes
 * (level, time, model, version, requestId, status, latencyMs, workerPid). Every log line of the server is formatted
 * here, so both formats come from one place.
 */

import { createRequire } from 'node:module';
import type { Writable } from 'node:stream';
import type { DestinationStream, Logger, pino as Pino } from 'pino';
import { type PoolEvent, poolEventText } from '../runtime/model-runtime.js';
import type { WorkerLogLine } from '../runtime/worker-process.js';
import { LogFile } from './log-file.js';

import type { LogFormat } from './log-format.js';

export { LOG_FORMATS, type LogFormat } from './log-format.js';

/** One answered HTTP request, as the access log and the JSON access record see it. */
export interface AccessRecord {
  /** The peer: `127.0.0.1:53246` (MMS's access log prints it as Java does, with a leading slash). */
  readonly remote: string;
  readonly method: string;
  readonly url: string;
  readonly httpVersion: string;
  readonly status: number;
  /** From the request's arrival to the end of its response, in milliseconds. */
  readonly latencyMs: number;
  /** A gRPC call's status code (then `method` is `gRPC`, `url` the method's path, `status` the HTTP equivalent). */
  readonly grpcStatus?: number | undefined;
  readonly requestId: string;
  /** The model and version the request was served by, when a route resolved one. */
  readonly model?: string | undefined;
  readonly version?: string | undefined;
}

export interface ServerLoggerOptions {
  format: LogFormat;
  /** Text format: where server messages go (default: stdout with a timestamp). Ignored for json. */
  log?: ((msg: string) => void) | undefined;
  /** Json format: where the lines go (default: stdout, written asynchronously). */
  destination?: Writable | DestinationStream | undefined;
}

/** `2026-11-24T20:50:26.460Z [INFO ] message` on stdout: the server's readable log line. */
export function defaultLog(msg: string): void {
  process.stdout.write(`${new Date().toISOString()} [INFO ] ${msg}\n`);
}

/** The text form of a worker's output line (also what the runtime prints when nobody routes its lines). */
function workerText(l: WorkerLogLine): void {
  process.stderr.write(`[${l.modelName} W-${l.workerId}] ${l.line}\n`);
}

/** MMS's access log line: peer, request line, status, whole milliseconds. */
function accessText(r: AccessRecord): string {
  if (r.grpcStatus !== undefined) return `/${r.remote} "gRPC ${r.url}" ${r.grpcStatus} ${Math.round(r.latencyMs)}`;
  return `/${r.remote} "${r.method} ${r.url} HTTP/${r.httpVersion}" ${r.status} ${Math.round(r.latencyMs)}`;
}

/** pino loads only for log_format=json: it is off the start path of the text format (cold start). */
function loadPino(): typeof Pino {
  return (createRequire(import.meta.url)('pino') as { pino: typeof Pino }).pino;
}

/** pino-http's convention: a shipper can alert on level without parsing the status. */
function accessLevel(status: number): 'info' | 'warn' | 'error' {
  return status >= 500 ? 'error' : status >= 400 ? 'warn' : 'info';
}

/**
 * The server's log. `info` takes a server message; `worker`/`workerEvent` give the runtime options that route one
 * model version's worker lines; `access` records answered requests (null when nothing records them, so the HTTP
 * layer does not time requests for nobody).
 */
export class ServerLogger {
  readonly format: LogFormat;
  /** One server message (bound: pass it around as a plain function). */
  readonly info: (msg: string) => void;
  readonly #pino: Logger | null;
  readonly #destination: DestinationStream | null;
  #accessFile: LogFile | null = null;
  #access: ((r: AccessRecord) => void) | null;

  constructor(o: ServerLoggerOptions) {
    this.format = o.format;
    if (o.format === 'json') {
      const pino = loadPino();
      // async: a slow log pipe never stalls a request; lines written meanwhile go out in the next write
      const destination = o.destination ?? pino.destination({ dest: 1, sync: false });
      this.#destination = destination as DestinationStream;
      this.#pino = pino(
        {
          timestamp: pino.stdTimeFunctions.isoTime,
          formatters: { level: (label) => ({ level: label }) },
        },
        this.#destination,
      );
      const p = this.#pino;
      this.info = (msg) => p.info(msg);
    } else {
      this.#pino = null;
      this.#destination = null;
      this.info = o.log ?? defaultLog;
    }
    this.#access = this.#accessRecorder();
  }

  /** Opens access_log.log under `dir` (log_location); a failure throws before the server listens. */
  openAccessLog(dir: string): void {
    this.#accessFile = LogFile.open(dir, 'access_log.log', 'log_location', this.info);
    this.#access = this.#accessRecorder();
    this.info(`Access log: ${this.#accessFile.path}`);
  }

  /** Records one answered request, or null: nothing records requests (text format without log_location). */
  get access(): ((r: AccessRecord) => void) | null {
    return this.#access;
  }

  #accessRecorder(): ((r: AccessRecord) => void) | null {
    const file = this.#accessFile;
    const p = this.#pino;
    if (p === null) return file === null ? null : (r) => file.write(accessText(r));
    return (r) => {
      file?.write(accessText(r));
      p[accessLevel(r.status)](
        {
          requestId: r.requestId,
          method: r.method,
          url: r.url,
          status: r.status,
          ...(r.grpcStatus !== undefined ? { grpcStatus: r.grpcStatus } : {}),
          latencyMs: Math.round(r.latencyMs * 1000) / 1000,
          remote: r.remote,
          ...(r.model !== undefined ? { model: r.model, version: r.version } : {}),
        },
        `${r.method} ${r.url} ${r.status}`,
      );
    };
  }

  /** Where the output lines of one model version's workers go. */
  worker(model: string, version: string): (l: WorkerLogLine) => void {
    const p = this.#pino;
    if (p === null) return workerText;
    return (l) => p.info({ model, version, worker: `W-${l.workerId}`, workerPid: l.pid, stream: l.stream }, l.line);
  }

  /** Where the pool events (started, died, ...) of one model version's workers go. */
  workerEvent(model: string, version: string): (e: PoolEvent) => void {
    const p = this.#pino;
    if (p === null) return (e) => process.stderr.write(`[${model} W-${e.workerId}] ${poolEventText(e)}\n`);
    return (e) => {
      const pid = 'pid' in e ? e.pid : null;
      const level = e.type === 'died' || e.type === 'start-failed' ? 'warn' : 'info';
      p[level]({ model, version, worker: `W-${e.workerId}`, workerPid: pid, event: e.type }, poolEventText(e));
    };
  }

  /** Writes what is buffered and closes access_log.log. */
  async close(): Promise<void> {
    const file = this.#accessFile;
    this.#accessFile = null;
    this.#access = this.#accessRecorder();
    await file?.close();
    const d = this.#destination as (DestinationStream & { flush?: (cb: (err?: Error) => void) => void }) | null;
    if (d?.flush) await new Promise<void>((resolve) => d.flush!(() => resolve()));
  }
}
