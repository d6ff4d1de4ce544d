/**
 * One worker process (Python or Node), its life from spawn to exit: spawn, wait for the "worker started" line,
 * connect, LOAD, then one PREDICT in flight at a time (MMS WorkerThread semantics, docs/worker-protocol.md §1, §5.3,
 * §6). The socket is worker-connection.ts's, the output lines worker-output.ts's, the meaning of replies
 * worker-reply.ts's. Every failure path ends the process: a WorkerProcess never leaves a child behind.
 */

import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { MarError } from '../errors.js';
import { type LaunchSpec, launchSpec, type WorkerSocket, workerFieldCap } from './launchers.js';
import { type MetricLine, predictionTimeSeries } from './metrics.js';
import type { OpenedModel } from './model.js';
import { DEFAULT_MAX_FRAME_BYTES, encodeLoad, encodePredict, type InferenceRequest, type WorkerReply } from './protocol.js';
import { releaseEndpoint, WorkerConnection } from './worker-connection.js';
import { type OutputHandlers, readWorkerOutput, routeReplyLines } from './worker-output.js';
import { adoptOrSpawn } from './worker-prespawn.js';
import { loadError } from './worker-reply.js';

export interface WorkerLogLine {
  modelName: string;
  workerId: string;
  stream: 'stdout' | 'stderr';
  line: string;
  /** The worker's pid (the `[PID]` it announced, else the spawned process's). */
  pid: number;
}

export interface WorkerExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export type WorkerState = 'starting' | 'ready' | 'busy' | 'stopping' | 'dead';

export interface WorkerProcessOptions {
  /** Aborting it cancels a start that is still under way (e.g. a LOAD that hangs): the process is killed. */
  signal?: AbortSignal;
  /** Worker id, shown in logs as W-<id>. */
  id: string;
  model: OpenedModel;
  /** Sent in LOAD (context.system_properties.batch_size); at least 1. */
  batchSize: number;
  /** -1 (default) = CPU. */
  gpuId?: number;
  /** Python interpreter for python/python3 models (default: $MAR_PYTHON, else 'python3' on PATH). */
  python?: string;
  /** How many workers the model runs (the pool's size when this one starts): sets the worker's torch threads. */
  workers?: number;
  /** Socket kind (default unix; tcp binds 127.0.0.1 on a free port). */
  sockType?: 'unix' | 'tcp';
  /** Wait for the "worker started" line and the connection (default 120000, MMS's 2 minutes). */
  startTimeoutMs?: number;
  /** Wait for the LOAD reply (default 120000). */
  loadTimeoutMs?: number;
  /** MMS_DECODE_INPUT_REQUEST (default true). */
  decodeInputRequest?: boolean;
  /** Base environment for the worker (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Receives every worker output line except the handshake and [METRICS] lines (default: stderr, prefixed). */
  log?: (line: WorkerLogLine) => void;
  /** Receives parsed [METRICS] lines (dropped if not given). */
  onMetric?: (metric: MetricLine) => void;
  /** onMetric keeps only a gauge's latest value (Prometheus): the worker sends its PredictionTime at most every 100 ms. */
  metricsSampled?: boolean;
  /** Cap on any length field in a reply (default 6553500, MMS max_response_size). */
  maxResponseBytes?: number;
  /**
   * The largest request body the frontend sends (MMS max_request_size). The Python worker refuses a length field
   * over it plus slack instead of allocating it (a corrupt frame); unset, the worker's own cap is 256 MiB.
   */
  maxRequestBytes?: number;
}

const DEFAULT_START_TIMEOUT_MS = 120_000;
/** After the socket closes unexpectedly, how long the process gets to exit before we kill it. */
const DEATH_GRACE_MS = 1_000;
/** After 'exit' with a message in flight, how long the socket may take to deliver its last bytes. */
const DRAIN_GRACE_MS = 500;
/** After 'exit', how long to wait for the output pipes to close (a grandchild may hold them). */
const PIPE_CLOSE_GRACE_MS = 2_000;

export { workerFieldCap } from './launchers.js';

function defaultLog(l: WorkerLogLine): void {
  process.stderr.write(`[${l.modelName} W-${l.workerId}] ${l.line}\n`);
}

export class WorkerProcess extends EventEmitter {
  readonly id: string;
  readonly startTime = new Date();
  readonly #options: WorkerProcessOptions;
  readonly #child: ChildProcess;
  readonly #socketSpec: WorkerSocket;
  readonly #sockDir: string | null;
  readonly #conn: WorkerConnection;
  /** 'busy' is not stored: it is 'ready' with a PREDICT in flight (see the state getter). */
  #state: Exclude<WorkerState, 'busy'> = 'starting';
  #exitInfo: WorkerExitInfo | null = null;
  #finalized = false;
  #killedByUs = false;
  #deathTimer: NodeJS.Timeout | null = null;
  readonly #exited: Promise<WorkerExitInfo>;
  #resolveExited!: (info: WorkerExitInfo) => void;
  #workerPid: number | null = null;
  #drain: Promise<void> | null = null;

  /**
   * Spawns the worker, waits for its "started" line, connects and sends LOAD. Rejects MarError
   * WORKER_START_FAILED (spawn failure, early exit, timeout) or WORKER_LOAD_FAILED (non-200 LOAD reply:
   * httpStatus = reply code, message = the worker's message). On failure the process is gone.
   */
  static async start(options: WorkerProcessOptions): Promise<WorkerProcess> {
    const launch = (socket: WorkerSocket): LaunchSpec =>
      launchSpec({
        runtime: options.model.runtime,
        modelDir: options.model.dir,
        entry: options.model.entry,
        socket,
        decodeInputRequest: options.decodeInputRequest ?? true,
        metrics: options.onMetric === undefined ? false : options.metricsSampled === true ? 'sampled' : true,
        ...(options.python !== undefined ? { python: options.python } : {}),
        ...(options.workers !== undefined ? { workers: options.workers } : {}),
        ...(options.env !== undefined ? { env: options.env } : {}),
        ...(options.maxRequestBytes !== undefined ? { maxFieldBytes: workerFieldCap(options.maxRequestBytes) } : {}),
      });
    // A worker spawned early for this model (worker-prespawn.ts) is adopted when it was launched the same way.
    const { child, socket, sockDir, command } = await adoptOrSpawn(launch, options.sockType ?? 'unix', options.model.name);
    const worker = new WorkerProcess(options, child, socket, sockDir, command);
    // Cancelling kills the process whatever phase the start is in; its exit then fails the start.
    const onAbort = (): void => {
      worker.#conn.fail(
        new MarError('WORKER_START_FAILED', `start of worker W-${options.id} of model ${options.model.name} was cancelled`),
      );
      worker.#signal('SIGKILL');
    };
    if (options.signal?.aborted) onAbort();
    else options.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await worker.#startup();
      return worker;
    } catch (err) {
      const loadFailed = err instanceof MarError && err.code === 'WORKER_LOAD_FAILED';
      // A failed LOAD: let the worker print its traceback and exit by itself, briefly.
      await worker.#terminate(loadFailed ? DEATH_GRACE_MS : 0);
      if (err instanceof MarError && (loadFailed || err.code === 'WORKER_START_FAILED')) throw err;
      throw new MarError(
        'WORKER_START_FAILED',
        `worker W-${options.id} of model ${options.model.name} failed to start: ${(err as Error).message}`,
        {
          cause: err,
          details: { pid: worker.pid },
        },
      );
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
    }
  }

  private constructor(options: WorkerProcessOptions, child: ChildProcess, socket: WorkerSocket, sockDir: string | null, command: string) {
    super();
    this.id = options.id;
    this.#options = options;
    this.#child = child;
    this.#socketSpec = socket;
    this.#sockDir = sockDir;
    const log = options.log ?? defaultLog;
    const output: OutputHandlers = {
      inHandshake: () => this.#conn.inFlight === 'start',
      onPid: (pid) => (this.#workerPid = pid),
      onStarted: () => this.#conn.connect(this.#socketSpec),
      onMetric: options.onMetric,
      predictionTime: predictionTimeSeries(options.model.name, hostname()),
      log: (stream, line) => log({ modelName: this.modelName, workerId: this.id, stream, line, pid: this.pid }),
    };
    this.#conn = new WorkerConnection({
      workerId: options.id,
      modelName: options.model.name,
      maxFrameBytes: options.maxResponseBytes ?? DEFAULT_MAX_FRAME_BYTES,
      onBroken: () => void this.#terminate(0),
      onClose: () => this.#onSocketClose(),
      // the worker was told to put a batch's metric lines in the reply only when they are read (launchers.ts)
      onPredictReply: options.onMetric === undefined ? undefined : (reply) => routeReplyLines(reply, output),
    });
    this.#exited = new Promise((resolve) => (this.#resolveExited = resolve));
    readWorkerOutput(child.stdout!, child.stderr!, output);
    child.on('error', (err: NodeJS.ErrnoException) => {
      const msg =
        err.code === 'ENOENT'
          ? `cannot start worker for model ${options.model.name}: ${command} not found; install it or pass --python`
          : `cannot start worker for model ${options.model.name}: ${err.message}`;
      this.#conn.fail(new MarError('WORKER_START_FAILED', msg, { cause: err }));
      // A spawn failure emits no 'exit'.
      if (child.pid === undefined) this.#onExit(null, null);
    });
    child.on('exit', (code, signal) => this.#onExit(code, signal));
    child.on('close', () => void this.#finalize());
  }

  get pid(): number {
    return this.#workerPid ?? this.#child.pid ?? 0;
  }

  get state(): WorkerState {
    return this.#state === 'ready' && this.#conn.inFlight === 'predict' ? 'busy' : this.#state;
  }

  get modelName(): string {
    return this.#options.model.name;
  }

  /** Resolves with the exit info once the process has exited and the worker is cleaned up. */
  get exited(): Promise<WorkerExitInfo> {
    return this.#exited;
  }

  /**
   * Sends one batch and resolves with the worker's reply (any code: handler errors are replies, not
   * rejections). Rejects MarError: WORKER_TIMEOUT (no reply in timeoutMs; the process is killed),
   * WORKER_DIED 'Worker died.' (process exit / socket close; WORKER_OUT_OF_MEMORY, 507, if the exit code was 137),
   * FRAME_* (bad reply; the process is killed), or if the worker is busy or not running.
   */
  predict(batch: InferenceRequest[], timeoutMs: number): Promise<WorkerReply> {
    return new Promise((resolve, reject) => this.send(batch, timeoutMs, resolve, reject));
  }

  /**
   * predict() without a promise, for the pool's hot path: `onReply` is called from the socket's 'data' event (the
   * caller may send the next batch from it); every failure reaches `onError` a microtask later, as a rejection would.
   */
  send(batch: InferenceRequest[], timeoutMs: number, onReply: (reply: WorkerReply) => void, onError: (err: unknown) => void): void {
    const state = this.state;
    let refusal: unknown = null;
    if (state === 'busy') {
      refusal = new MarError('INTERNAL', `worker W-${this.id} of model ${this.modelName} already has a batch in flight`);
    } else if (state !== 'ready') {
      refusal = this.#diedError();
    } else {
      try {
        this.#conn.send(encodePredict(batch), timeoutMs, onReply, onError);
        return;
      } catch (err) {
        refusal = err;
      }
    }
    queueMicrotask(() => onError(refusal));
  }

  /** Closes the socket (the worker exits on EOF), SIGTERM after graceMs, SIGKILL after another graceMs. */
  async stop(graceMs = 5_000): Promise<void> {
    if (this.#finalized) return;
    if (this.#state !== 'dead') this.#state = 'stopping';
    this.#conn.end();
    const term = setTimeout(() => {
      this.#signal('SIGTERM');
      const kill = setTimeout(() => this.#signal('SIGKILL'), graceMs);
      kill.unref();
      void this.#exited.then(() => clearTimeout(kill));
    }, graceMs);
    term.unref();
    await this.#exited;
    clearTimeout(term);
  }

  /** Resident set size in bytes from /proc/<pid>/status; 0 if unknown. */
  memoryUsage(): number {
    if (this.#exitInfo || !this.pid) return 0;
    try {
      const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${this.pid}/status`, 'utf8'));
      return m ? Number(m[1]) * 1024 : 0;
    } catch {
      return 0;
    }
  }

  // ------------------------------------------------------------------------------------------------------------

  #startup(): Promise<void> {
    const timeoutMs = this.#options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
    const started = this.#conn.awaitStart(
      timeoutMs,
      () =>
        new MarError(
          'WORKER_START_FAILED',
          `Backend worker startup time out: model ${this.modelName} worker W-${this.id} did not start within ${timeoutMs} ms`,
          { details: { pid: this.pid } },
        ),
    );
    return started.then(() => this.#load());
  }

  async #load(): Promise<void> {
    const model = this.#options.model;
    const timeoutMs = this.#options.loadTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
    const frame = encodeLoad({
      modelName: model.name,
      modelPath: model.dir,
      batchSize: Math.max(1, this.#options.batchSize),
      handler: model.handler,
      gpuId: this.#options.gpuId ?? -1,
    });
    if (this.#exitInfo) throw this.#startError();
    const reply = await this.#conn.load(
      frame,
      timeoutMs,
      () => new MarError('WORKER_START_FAILED', `model ${model.name} worker W-${this.id} did not answer LOAD within ${timeoutMs} ms`),
    );
    if (reply.code !== 200) throw loadError(reply, model.name, this.pid);
    this.#state = 'ready';
  }

  /** The worker closed its end: it is dying. Give it a moment to exit so the exit code is known, then make sure. */
  #onSocketClose(): void {
    if (this.#exitInfo || (this.#state === 'stopping' && this.#conn.inFlight === null)) return;
    if (this.#state === 'ready') this.#state = 'stopping';
    this.#deathTimer = setTimeout(() => this.#signal('SIGKILL'), DEATH_GRACE_MS);
    this.#deathTimer.unref();
  }

  /** A PREDICT's process is gone; killed from outside (exit 137, a SIGKILL we did not send) it is the OOM killer. */
  #diedError(): MarError {
    const info = this.#exitInfo;
    const oom = !!info && (info.code === 137 || (info.signal === 'SIGKILL' && !this.#killedByUs));
    return new MarError(oom ? 'WORKER_OUT_OF_MEMORY' : 'WORKER_DIED', 'Worker died.', { details: { ...info, pid: this.pid } });
  }

  #startError(): MarError {
    const info = this.#exitInfo;
    const how = info ? (info.signal ? `was killed by ${info.signal}` : `exited with code ${info.code}`) : 'closed its connection';
    return new MarError(
      'WORKER_START_FAILED',
      `Backend worker for model ${this.modelName} (W-${this.id}) ${how} before it was ready; see the lines logged above`,
      { details: { ...info, pid: this.pid } },
    );
  }

  #onExit(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.#exitInfo) return;
    this.#exitInfo = { code, signal };
    if (this.#deathTimer) clearTimeout(this.#deathTimer);
    this.#conn.stopWatchdog();
    if (this.#state !== 'dead') this.#state = 'stopping';
    const failPending = (): void => {
      const kind = this.#conn.inFlight;
      if (kind) this.#conn.fail(kind === 'predict' ? this.#diedError() : this.#startError());
      this.#conn.destroy();
    };
    if (this.#conn.inFlight && this.#conn.open) {
      // The exit can be seen before the socket's last bytes (e.g. a failed LOAD's reply, sent just before
      // exiting): read the socket to its end first, so that reply wins over "exited".
      this.#drain = this.#conn.closed(DRAIN_GRACE_MS).then(failPending);
    } else {
      failPending();
    }
    // Normally 'close' follows once the pipes drain; don't wait forever if a grandchild holds them.
    setTimeout(() => void this.#finalize(), PIPE_CLOSE_GRACE_MS).unref();
  }

  async #finalize(): Promise<void> {
    if (this.#finalized || !this.#exitInfo) return;
    this.#finalized = true;
    await this.#drain;
    this.#state = 'dead';
    this.#conn.destroy();
    await releaseEndpoint(this.#sockDir);
    this.#resolveExited(this.#exitInfo);
    this.emit('exit', this.#exitInfo);
  }

  #signal(sig: NodeJS.Signals, byUs = true): void {
    if (this.#exitInfo || this.#child.pid === undefined) return;
    if (byUs) this.#killedByUs = true;
    try {
      this.#child.kill(sig);
    } catch {
      /* already gone */
    }
  }

  /** Ends the process: optionally lets it exit by itself for graceMs, then SIGKILL; resolves when finalized. */
  async #terminate(graceMs: number): Promise<void> {
    if (this.#state !== 'dead') this.#state = 'stopping';
    this.#conn.destroy();
    if (!this.#exitInfo) {
      if (graceMs > 0) {
        const t = setTimeout(() => this.#signal('SIGKILL'), graceMs);
        t.unref();
        void this.#exited.then(() => clearTimeout(t));
      } else {
        this.#signal('SIGKILL');
      }
    }
    if (this.#child.pid === undefined && !this.#exitInfo) this.#onExit(null, null);
    await this.#exited;
  }
}
