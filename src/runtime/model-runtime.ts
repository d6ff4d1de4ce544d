import { MarError } from '../errors.js';
import { BatchAggregator } from './batch-aggregator.js';
import { Job, JobQueue } from './job-queue.js';
import type { RuntimeTimings } from './metrics.js';
import type { OpenedModel } from './model.js';
import type { InferenceRequest, PredictionResult } from './protocol.js';
import { SERVING_DEFAULTS } from './serving-options.js';
import type { PoolEvent, PoolWorkerOptions, StartOutcome, WorkerInfo } from './worker-pool.js';
import { WorkerPool } from './worker-pool.js';

export type { PoolEvent, WorkerInfo, WorkerStatus } from './worker-pool.js';

export interface ModelRuntimeOptions {
  model: OpenedModel;
  /** Most requests per batch sent to one worker (>= 1). Default 1. */
  batchSize?: number;
  /** How long a batch waits to fill once its first request is taken (ms). Default 100 (MMS). */
  maxBatchDelayMs?: number;
  /** Requests that may wait for a worker; one more is refused with 503. Default 100 (MMS job_queue_size). */
  jobQueueSize?: number;
  /** A worker that does not answer a batch within this is killed and replaced (ms). Default 120 000. */
  responseTimeoutMs?: number;
  /** Workers `start()` launches. Default 1. */
  minWorkers?: number;
  /** Upper bound kept for describe and scale-down (MMS never autoscales). Default minWorkers. */
  maxWorkers?: number;
  /** Python interpreter for python/python3 models. Default `python3`. */
  python?: string;
  /** false: the worker passes every input as raw bytes (MMS_DECODE_INPUT_REQUEST=false). */
  decodeInputRequest?: boolean;
  /** How long a worker may take to print its started line (ms). */
  startTimeoutMs?: number;
  /** Worker stdout/stderr lines (default: WorkerProcess prints them to stderr). */
  log?: PoolWorkerOptions['log'];
  /** Parsed [METRICS] lines from the workers. */
  onMetric?: PoolWorkerOptions['onMetric'];
  metricsSampled?: PoolWorkerOptions['metricsSampled'];
  /** Largest length field accepted in a worker reply (bytes); MMS max_response_size. */
  maxResponseBytes?: number;
  /**
   * Largest request body that will be submitted (MMS max_request_size; `predict`: the largest input). The Python
   * worker refuses a bigger length field as a corrupt frame instead of allocating it. Default: the worker's 256 MiB.
   */
  maxRequestBytes?: number;
  /** Extra environment for the worker processes. */
  env?: NodeJS.ProcessEnv;
  /** How long a worker may take to answer LOAD (ms). Default: WorkerProcess's (120 s). */
  loadTimeoutMs?: number;
  /** Worker lifecycle events (started, died, start-failed, stopped). Default: one line each on stderr. */
  onEvent?: (event: PoolEvent) => void;
  /** Restart delays in ms (default 1, 1, 2, 3, 5, 8, ... s); tests shorten them. */
  backoffMs?: number[];
  /** Worker load and per-batch frontend timings (the server's TorchServe metrics). */
  timings?: RuntimeTimings;
}

/** What a scale (or start) call achieved, so a server can answer like MMS (200 / 210 / 500). */
export interface ScaleResult {
  /** Workers this call added. */
  added: number;
  /** Workers this call retired. */
  removed: number;
  /** Of the start attempts waited for (synchronous only): how many loaded, how many failed. */
  started: number;
  failed: number;
  /** Workers loaded and serving after the call. */
  running: number;
  /** Workers configured after the call (MMS minWorkers after scale-up / kept after scale-down). */
  configured: number;
  /** false when the call returned without waiting (asynchronous) and workers are still starting. */
  complete: boolean;
  /** The first start failure (WORKER_START_FAILED / WORKER_LOAD_FAILED, httpStatus 500 or 507). */
  error?: MarError;
}

const MAX_TIMER_MS = 2_147_483_647;

/** A submitted request and the way to withdraw it (see ModelRuntime.submitCancellable). */
export interface CancellablePrediction {
  readonly promise: Promise<PredictionResult>;
  /** A queued job leaves the queue; the promise rejects REQUEST_CANCELLED unless it settled already. */
  cancel(reason?: unknown): void;
  /** performance.now() when a worker took the request (0 while it waits): where its queue time ends. */
  readonly sentAt: number;
}

/** One object per request (no closures): the job's promise, its withdrawal and its queue end. */
class Submitted implements CancellablePrediction {
  readonly promise: Promise<PredictionResult>;
  readonly #job: Job;

  constructor(promise: Promise<PredictionResult>, job: Job) {
    this.promise = promise;
    this.#job = job;
  }

  cancel(reason?: unknown): void {
    this.#job.cancel(reason);
  }

  get sentAt(): number {
    return this.#job.sentAt;
  }
}

const refused = (err: MarError): CancellablePrediction => ({ promise: Promise.reject(err), cancel: () => {}, sentAt: 0 });

const DEFAULTS = {
  batchSize: SERVING_DEFAULTS.batchSize,
  maxBatchDelayMs: SERVING_DEFAULTS.maxBatchDelayMs,
  jobQueueSize: SERVING_DEFAULTS.jobQueueSize,
  responseTimeoutMs: SERVING_DEFAULTS.responseTimeoutSeconds * 1000,
  minWorkers: SERVING_DEFAULTS.workers,
};

function checkInt(name: string, v: number, min: number): number {
  if (!Number.isInteger(v) || v < min) throw new MarError('USAGE', `${name} must be an integer >= ${min}, got ${v}`);
  return v;
}

/** How a worker died, for the log: a kill from outside (exit 137, a SIGKILL we did not send) is the OOM killer's. */
function diedHow(error: MarError): string {
  if (error.code === 'WORKER_OUT_OF_MEMORY') return 'was killed from outside (SIGKILL or exit 137): out of memory';
  return `died: ${error.message}`;
}

/** The readable text of a pool event (the server's logger and the default stderr line share it). */
export function poolEventText(e: PoolEvent): string {
  switch (e.type) {
    case 'started':
      return `worker started (pid ${e.pid}, ${Math.round(e.startMs)} ms)`;
    case 'start-failed':
      return `worker failed to start: ${e.error.message}${e.retryInMs === null ? '' : `; retrying in ${e.retryInMs} ms`}`;
    case 'died':
      return `worker (pid ${e.pid}) ${diedHow(e.error)}; ${e.inFlight} request(s) failed; restarting in ${e.retryInMs} ms`;
    case 'stopped':
      return 'worker stopped';
  }
}

function defaultEventLog(modelName: string): (e: PoolEvent) => void {
  return (e) => process.stderr.write(`[${modelName} W-${e.workerId}] ${poolEventText(e)}\n`);
}

/**
 * Everything one model needs to serve requests: a bounded JobQueue, a BatchAggregator and a supervised
 * WorkerPool. `model-server predict` and the HTTP server both use it.
 *
 * The constructor starts nothing: call `start()` (min workers from the options) or `scale()`. The caller owns
 * the OpenedModel: release it after `close()`.
 */
export class ModelRuntime {
  readonly model: OpenedModel;
  readonly batchSize: number;
  readonly maxBatchDelayMs: number;
  readonly jobQueueSize: number;
  readonly responseTimeoutMs: number;
  readonly #queue: JobQueue<Job>;
  readonly #aggregator: BatchAggregator<Job>;
  readonly #pool: WorkerPool;
  #minWorkers: number;
  #maxWorkers: number;
  #closed = false;
  #closing: Promise<void> | null = null;
  #drainWaiter: (() => void) | null = null;
  readonly #removeJob = (job: Job): void => {
    this.#aggregator.removeJob(job);
    this.#drainWaiter?.(); // a drain may have been waiting on just this job
  };

  constructor(options: ModelRuntimeOptions) {
    this.model = options.model;
    this.batchSize = checkInt('batch size', options.batchSize ?? DEFAULTS.batchSize, 1);
    const delay = options.maxBatchDelayMs ?? DEFAULTS.maxBatchDelayMs;
    if (!Number.isFinite(delay) || delay < 0) throw new MarError('USAGE', `max batch delay must be >= 0 ms, got ${delay}`);
    this.maxBatchDelayMs = delay;
    this.jobQueueSize = checkInt('job queue size', options.jobQueueSize ?? DEFAULTS.jobQueueSize, 1);
    const timeout = options.responseTimeoutMs ?? DEFAULTS.responseTimeoutMs;
    if (!(timeout > 0)) throw new MarError('USAGE', `response timeout must be > 0 ms, got ${timeout}`);
    // setTimeout treats anything above 2^31-1 ms (24.8 days) as 1 ms.
    this.responseTimeoutMs = Math.min(timeout, MAX_TIMER_MS);
    this.#minWorkers = checkInt('min workers', options.minWorkers ?? DEFAULTS.minWorkers, 0);
    this.#maxWorkers = checkInt('max workers', options.maxWorkers ?? this.#minWorkers, this.#minWorkers);
    if (options.backoffMs !== undefined && (options.backoffMs.length === 0 || options.backoffMs.some((ms) => !(ms >= 0)))) {
      throw new MarError('USAGE', 'backoffMs must be a non-empty list of delays >= 0');
    }

    this.#queue = new JobQueue<Job>(this.jobQueueSize);
    this.#aggregator = new BatchAggregator<Job>(this.#queue, { batchSize: this.batchSize, maxBatchDelayMs: delay });
    const workerOptions: PoolWorkerOptions = {};
    if (options.python !== undefined) workerOptions.python = options.python;
    if (options.decodeInputRequest !== undefined) workerOptions.decodeInputRequest = options.decodeInputRequest;
    if (options.startTimeoutMs !== undefined) workerOptions.startTimeoutMs = options.startTimeoutMs;
    if (options.loadTimeoutMs !== undefined) workerOptions.loadTimeoutMs = options.loadTimeoutMs;
    if (options.log !== undefined) workerOptions.log = options.log;
    if (options.onMetric !== undefined) workerOptions.onMetric = options.onMetric;
    if (options.metricsSampled !== undefined) workerOptions.metricsSampled = options.metricsSampled;
    if (options.maxResponseBytes !== undefined) workerOptions.maxResponseBytes = options.maxResponseBytes;
    if (options.env !== undefined) workerOptions.env = options.env;
    if (options.maxRequestBytes !== undefined) workerOptions.maxRequestBytes = options.maxRequestBytes;
    this.#pool = new WorkerPool({
      model: options.model,
      batchSize: this.batchSize,
      responseTimeoutMs: this.responseTimeoutMs,
      aggregator: this.#aggregator,
      workerOptions,
      ...(options.backoffMs ? { backoffMs: options.backoffMs } : {}),
      onEvent: options.onEvent ?? defaultEventLog(options.model.name),
      onBatchDone: () => this.#drainWaiter?.(),
      timings: options.timings,
    });
  }

  get minWorkers(): number {
    return this.#minWorkers;
  }

  get maxWorkers(): number {
    return this.#maxWorkers;
  }

  /** Requests waiting for a worker (not counting a batch that is forming). */
  get queueLength(): number {
    return this.#queue.length;
  }

  get isClosed(): boolean {
    return this.#closed;
  }

  /** Starts the option's minWorkers (same as `scale(minWorkers, maxWorkers, opts)`). */
  start(opts: { synchronous?: boolean } = {}): Promise<ScaleResult> {
    return this.scale(this.#minWorkers, this.#maxWorkers, opts);
  }

  /**
   * MMS `PUT /models/{m}` semantics: fewer than `min` workers -> add the difference; otherwise retire those
   * with index >= `max`. No autoscaling in between.
   * synchronous (default true): waits until every worker that is starting has loaded or failed its attempt
   * (a failed one keeps retrying with backoff; the server decides whether to unregister), and, on scale-down,
   * until the retired workers finished their batch and stopped. Never rejects for worker failures: read
   * `failed`/`error`. Rejects USAGE for bad numbers and SERVICE_UNAVAILABLE after close().
   */
  async scale(minWorkers: number, maxWorkers: number = minWorkers, opts: { synchronous?: boolean } = {}): Promise<ScaleResult> {
    if (this.#closed) throw new MarError('SERVICE_UNAVAILABLE', `Model ${this.model.name} is being unloaded.`);
    checkInt('min workers', minWorkers, 0);
    checkInt('max workers', maxWorkers, 0);
    if (maxWorkers < minWorkers) throw new MarError('USAGE', `max workers (${maxWorkers}) must be >= min workers (${minWorkers})`);
    const synchronous = opts.synchronous ?? true;
    this.#minWorkers = minWorkers;
    this.#maxWorkers = maxWorkers;
    const current = this.#pool.size;
    let added = 0;
    let removed = 0;
    let retired: Promise<void> = Promise.resolve();
    if (current < minWorkers) {
      added = minWorkers - current;
      this.#pool.add(added);
    } else if (current > maxWorkers) {
      removed = current - maxWorkers;
      retired = this.#pool.shrink(maxWorkers);
      if (maxWorkers === 0) this.#failQueued();
    }
    if (!synchronous) {
      return { added, removed, started: 0, failed: 0, running: this.#pool.running, configured: this.#pool.size, complete: false };
    }
    const outcomes: StartOutcome[] = await Promise.all(this.#pool.pendingStarts());
    await retired;
    const failures = outcomes.filter((o) => !o.ok);
    const result: ScaleResult = {
      added,
      removed,
      started: outcomes.length - failures.length,
      failed: failures.length,
      running: this.#pool.running,
      configured: this.#pool.size,
      complete: true,
    };
    if (failures[0]?.error) result.error = failures[0].error;
    return result;
  }

  /**
   * Queues one request and resolves with its prediction (the worker answered 200 for the batch). Rejects with
   * MarError: 503 QUEUE_FULL / SERVICE_UNAVAILABLE "No worker is available to serve request for model: <m>.
   * Consider increasing job queue size." (queue full, or no workers configured, or closing);
   * PREDICTION_FAILED with the worker's code and message; WORKER_DIED 500 "Worker died." (WORKER_OUT_OF_MEMORY 507 on exit 137);
   * REQUEST_CANCELLED when `signal` aborts first (a queued job leaves the queue).
   */
  submit(request: InferenceRequest, signal?: AbortSignal): Promise<PredictionResult> {
    if (this.#closed || this.#pool.size === 0) return Promise.reject(this.#noWorker('SERVICE_UNAVAILABLE'));
    if (signal?.aborted) {
      return Promise.reject(
        new MarError('REQUEST_CANCELLED', `Request ${request.requestId} was cancelled by the client.`, { cause: signal.reason }),
      );
    }
    let job!: Job;
    const promise = new Promise<PredictionResult>((resolve, reject) => {
      job = new Job(request, resolve, reject, signal);
    });
    if (!this.#aggregator.add(job)) {
      job.reject(this.#noWorker('QUEUE_FULL'));
    } else if (signal !== undefined && !job.isSent) {
      job.onAbort = this.#removeJob;
      job.watchAbort();
    }
    return promise;
  }

  /**
   * `submit` for callers that learn about a client going away from an event of their own (the HTTP server):
   * `cancel()` does what aborting `submit`'s signal does, without an AbortController per request.
   */
  submitCancellable(request: InferenceRequest): CancellablePrediction {
    if (this.#closed || this.#pool.size === 0) return refused(this.#noWorker('SERVICE_UNAVAILABLE'));
    let job!: Job;
    const promise = new Promise<PredictionResult>((resolve, reject) => {
      job = new Job(request, resolve, reject);
    });
    job.onAbort = this.#removeJob;
    if (!this.#aggregator.add(job)) job.reject(this.#noWorker('QUEUE_FULL'));
    return new Submitted(promise, job);
  }

  /**
   * `submitCancellable` without a promise, for the hot path: `onResult` or `onError` is called once, when the
   * worker answers (or at once: QUEUE_FULL, SERVICE_UNAVAILABLE, then null is returned). `job.cancel()` withdraws it.
   */
  submitTo(request: InferenceRequest, onResult: (r: PredictionResult) => void, onError: (e: MarError) => void): Job | null {
    if (this.#closed || this.#pool.size === 0) {
      onError(this.#noWorker('SERVICE_UNAVAILABLE'));
      return null;
    }
    const job = new Job(request, onResult, onError);
    job.onAbort = this.#removeJob;
    if (!this.#aggregator.add(job)) job.reject(this.#noWorker('QUEUE_FULL'));
    return job;
  }

  workers(): WorkerInfo[] {
    return this.#pool.workers();
  }

  /** For /ping: Healthy when running >= configured, Partial Healthy when 0 < running, Unhealthy when 0 of >0. */
  health(): { running: number; configured: number } {
    return { running: this.#pool.running, configured: this.#closed ? 0 : this.#pool.size };
  }

  /**
   * Stops accepting requests, fails queued ones with 503 (or, with `drain`, serves them first within the
   * grace), lets in-flight batches finish within `graceMs` (then kills; their jobs get 500 "Worker died."),
   * and stops every worker. Every submitted request is answered. Idempotent.
   */
  close(opts: { graceMs?: number; drain?: boolean } = {}): Promise<void> {
    this.#closing ??= this.#close(opts.graceMs ?? 30_000, opts.drain ?? false);
    return this.#closing;
  }

  async #close(graceMs: number, drain: boolean): Promise<void> {
    this.#closed = true;
    const deadline = performance.now() + graceMs;
    if (drain && this.#pool.running > 0) await this.#drained(graceMs);
    this.#aggregator.close();
    this.#failQueued();
    await this.#pool.close(Math.max(0, deadline - performance.now()));
  }

  /** Resolves when no request is queued, forming or in flight, or after `ms`. */
  #drained(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.#queue.length === 0 && this.#aggregator.formingLength === 0 && this.#pool.busy === 0) finish();
      };
      const finish = (): void => {
        clearTimeout(timer);
        this.#drainWaiter = null;
        resolve();
      };
      const timer = Number.isFinite(ms) ? setTimeout(finish, Math.min(ms, MAX_TIMER_MS)) : undefined;
      this.#drainWaiter = check;
      check();
    });
  }

  #failQueued(): void {
    const jobs = this.#queue.drain();
    if (jobs.length === 0) return;
    const err = this.#noWorker('SERVICE_UNAVAILABLE');
    for (const job of jobs) job.reject(err);
  }

  #noWorker(code: 'QUEUE_FULL' | 'SERVICE_UNAVAILABLE'): MarError {
    return new MarError(code, `No worker is available to serve request for model: ${this.model.name}. Consider increasing job queue size.`);
  }
}
