import { randomBytes } from 'node:crypto';
import { MarError, isMarError } from '../errors.js';
import { Backoff } from './backoff.js';
import type { BatchAggregator, BatchTarget } from './batch-aggregator.js';
import type { Job } from './job-queue.js';
import type { OpenedModel } from './model.js';
import type { InferenceRequest, WorkerReply } from './protocol.js';
import { WorkerProcess } from './worker-process.js';
import type { WorkerProcessOptions } from './worker-process.js';

/**
 * Worker states as `describe` shows them. MMS itself only says READY (loaded) or UNLOADING (anything else);
 * we tell busy, starting and restarting workers apart.
 */
export type WorkerStatus = 'STARTING' | 'READY' | 'BUSY' | 'RESTARTING' | 'UNLOADING' | 'STOPPED';

export interface WorkerInfo {
  /** `<port>-<8 hex>` like MMS (`9001-55778aba`); the suffix changes when the worker is replaced. */
  id: string;
  pid: number | null;
  /** When the current process was started (null while none runs). */
  startTime: Date | null;
  status: WorkerStatus;
  /** RSS in bytes (0 if unknown). */
  memoryUsage: number;
  gpu: false;
  /** Restarts after a death or failed start since the last successful load. */
  restarts: number;
  /** The last start failure or death, if any. */
  lastError: string | null;
}

/** What the pool reports for logs and metrics. */
export type PoolEvent =
  | { type: 'started'; workerId: string; pid: number; startMs: number }
  | { type: 'start-failed'; workerId: string; error: MarError; retryInMs: number | null }
  | { type: 'died'; workerId: string; pid: number; error: MarError; inFlight: number; retryInMs: number | null }
  | { type: 'stopped'; workerId: string; pid: number | null };

/** Outcome of one worker's start attempt, for synchronous scaling. */
export interface StartOutcome {
  workerId: string;
  ok: boolean;
  error?: MarError;
}

/** Options handed to every WorkerProcess.start (minus what the pool decides itself). */
export type PoolWorkerOptions = Omit<WorkerProcessOptions, 'id' | 'model' | 'batchSize'>;

export interface WorkerPoolOptions {
  model: OpenedModel;
  batchSize: number;
  /** Per-batch reply deadline; a worker that misses it is killed and replaced. */
  responseTimeoutMs: number;
  aggregator: BatchAggregator<Job>;
  workerOptions?: PoolWorkerOptions;
  /** Restart delays (ms); tests shorten them. Default 1, 1, 2, 3, 5, 8, ... s. */
  backoffMs?: readonly number[];
  /** Longest restart delay (ms). Default 60 s. */
  maxBackoffMs?: number;
  onEvent?: (event: PoolEvent) => void;
  /** Called after every finished batch (drain bookkeeping). */
  onBatchDone?: () => void;
}

/** setTimeout's largest delay. */
const MAX_TIMER_MS = 2_147_483_647;

/**
 * A worker that stayed up this long after its LOAD was healthy: its death restarts the backoff from the first step.
 * (So does any reply to a batch.) MMS resets at every successful LOAD instead, so a handler that loads and then
 * crashes on each batch is restarted every second forever; here that crash loop backs off 1, 1, 2, 3, 5, ... s.
 */
const HEALTHY_UPTIME_MS = 60_000;

/** Grace for a worker to exit on EOF before SIGTERM/SIGKILL when we stop it. */
const STOP_GRACE_MS = 2000;

// MMS numbers workers from port 9000 upwards across all models; ours are process-wide too.
let nextPort = 9000;

const workerId = (port: number): string => `${port}-${randomBytes(4).toString('hex')}`;

/** Every job of a batch whose worker died or timed out gets this (MMS: 500, 507 when the exit code was 137). */
export function workerDiedError(cause: unknown): MarError {
  const status = isMarError(cause) && cause.httpStatus === 507 ? 507 : 500;
  return new MarError('WORKER_DIED', 'Worker died.', { cause, httpStatus: status });
}

/**
 * Answers every job of a batch from the worker's reply. Code 200: predictions are matched to jobs by requestId
 * (in batch order when they line up, which is what MMS and our workers send); a job with no prediction gets
 * 503 "Invalid model predict output". Any other code: every job fails with that code and message (MMS
 * `BatchAggregator.sendResponse`).
 */
export function completeBatch(batch: readonly Job[], reply: WorkerReply): void {
  if (reply.code !== 200) {
    const err = new MarError('PREDICTION_FAILED', reply.message || 'Prediction failed', { httpStatus: reply.code });
    for (const job of batch) job.reject(err);
    return;
  }
  const preds = reply.predictions;
  let byId: Map<string, (typeof preds)[number]> | null = null;
  for (let i = 0; i < batch.length; i++) {
    const job = batch[i]!;
    const p = preds[i];
    if (p !== undefined && p.requestId === job.request.requestId) {
      job.resolve(p);
      continue;
    }
    if (byId === null) {
      byId = new Map();
      for (const q of preds) if (!byId.has(q.requestId)) byId.set(q.requestId, q);
    }
    const match = byId.get(job.request.requestId);
    if (match) job.resolve(match);
    else job.reject(new MarError('PREDICTION_FAILED', 'Invalid model predict output', { httpStatus: 503 }));
  }
}

/** One supervised worker position: survives its processes (restarts keep the slot). */
class WorkerSlot implements BatchTarget<Job> {
  readonly port: number;
  id: string;
  proc: WorkerProcess | null = null;
  status: WorkerStatus = 'STARTING';
  batch: Job[] | null = null;
  retiring = false;
  /** Retired and removed from the pool (its process may still be on its way out). */
  finished = false;
  retryTimer: NodeJS.Timeout | null = null;
  killTimer: NodeJS.Timeout | null = null;
  /** Cancels the start attempt under way (kills its process), null when none is. */
  cancelStart: (() => void) | null = null;
  readonly backoff: Backoff;
  /** Waiters for the end of the current start attempt. */
  startWaiters: Array<(o: StartOutcome) => void> = [];
  lastError: MarError | null = null;
  restarts = 0;
  /** performance.now() of the current process's successful LOAD. */
  loadedAt = 0;
  readonly retired: Promise<void>;
  resolveRetired!: () => void;
  // Bound once per slot: the hot path creates no closures per batch.
  readonly onReply: (reply: WorkerReply) => void;
  readonly onPredictError: (err: unknown) => void;
  readonly runBatch: (batch: Job[]) => void;

  constructor(pool: PoolInternals, backoff: Backoff) {
    this.port = nextPort++;
    this.id = workerId(this.port);
    this.backoff = backoff;
    this.retired = new Promise((resolve) => (this.resolveRetired = resolve));
    this.onReply = (reply) => pool.done(this, reply);
    this.onPredictError = (err) => pool.failed(this, err);
    this.runBatch = (batch) => pool.run(this, batch);
  }
}

interface PoolInternals {
  run(slot: WorkerSlot, batch: Job[]): void;
  done(slot: WorkerSlot, reply: WorkerReply): void;
  failed(slot: WorkerSlot, err: unknown): void;
}

/**
 * Supervises the worker processes of one model: starts them, hands them to the BatchAggregator when idle, runs
 * one batch at a time on each, replaces the dead (backoff 1, 1, 2, 3, 5, ... s, reset after a good load) and
 * retires workers gracefully (in-flight batches finish; pulled-but-unsent jobs go back to the queue head).
 */
export class WorkerPool {
  readonly #opts: WorkerPoolOptions;
  readonly #aggregator: BatchAggregator<Job>;
  readonly #slots: WorkerSlot[] = [];
  readonly #internals: PoolInternals;
  /** Slots not being retired (read on every submit, so kept as a counter). */
  #active = 0;
  #closed = false;

  constructor(options: WorkerPoolOptions) {
    this.#opts = options;
    this.#aggregator = options.aggregator;
    this.#internals = {
      run: (slot, batch) => this.#run(slot, batch),
      done: (slot, reply) => this.#done(slot, reply),
      failed: (slot, err) => this.#failed(slot, err),
    };
  }

  /** Configured workers (not counting those being retired). */
  get size(): number {
    return this.#active;
  }

  /** Workers with a loaded process (READY or BUSY), not counting those being retired. */
  get running(): number {
    let n = 0;
    for (const s of this.#slots) if (!s.retiring && s.proc !== null && (s.status === 'READY' || s.status === 'BUSY')) n++;
    return n;
  }

  /** Workers running a batch right now (including ones being retired). */
  get busy(): number {
    let n = 0;
    for (const s of this.#slots) if (s.batch !== null) n++;
    return n;
  }

  workers(): WorkerInfo[] {
    return this.#slots.map((s) => ({
      id: s.id,
      pid: s.proc?.pid ?? null,
      startTime: s.proc?.startTime ?? null,
      status: s.status,
      memoryUsage: s.proc ? safeMemory(s.proc) : 0,
      gpu: false as const,
      restarts: s.restarts,
      lastError: s.lastError?.message ?? null,
    }));
  }

  /** Adds `count` workers and starts them; each promise settles when that worker's first start attempt ends. */
  add(count: number): Array<Promise<StartOutcome>> {
    if (this.#closed) throw new MarError('SERVICE_UNAVAILABLE', `Model ${this.#opts.model.name} is being unloaded.`);
    const out: Array<Promise<StartOutcome>> = [];
    for (let i = 0; i < count; i++) {
      const slot = new WorkerSlot(this.#internals, new Backoff(this.#opts.backoffMs, this.#opts.maxBackoffMs));
      this.#slots.push(slot);
      this.#active++;
      out.push(this.#waitStart(slot));
      this.#start(slot);
    }
    return out;
  }

  /** Promises for the end of the current start attempt of every worker that is starting now. */
  pendingStarts(): Array<Promise<StartOutcome>> {
    return this.#slots.filter((s) => !s.retiring && s.status === 'STARTING').map((s) => this.#waitStart(s));
  }

  /**
   * Retires the configured workers from index `keep` on (MMS scale-down: threads with index >= max). Busy ones
   * finish their batch first (or are killed after `graceMs`). Resolves when they are all stopped.
   */
  async shrink(keep: number, graceMs = Infinity): Promise<void> {
    const active = this.#slots.filter((s) => !s.retiring);
    await Promise.all(active.slice(Math.max(0, keep)).map((s) => this.#retire(s, graceMs)));
  }

  /** Retires every worker (in-flight batches get `graceMs` to finish) and refuses new ones. */
  async close(graceMs = 30_000): Promise<void> {
    this.#closed = true;
    // A copy: #retire may #finish a slot at once (one waiting to restart), splicing #slots while we iterate.
    await Promise.all([...this.#slots].map((s) => this.#retire(s, graceMs)));
  }

  #waitStart(slot: WorkerSlot): Promise<StartOutcome> {
    return new Promise((resolve) => slot.startWaiters.push(resolve));
  }

  #emit(event: PoolEvent): void {
    try {
      this.#opts.onEvent?.(event);
    } catch {
      // a logging callback must not break supervision
    }
  }

  #start(slot: WorkerSlot): void {
    slot.retryTimer = null;
    slot.status = 'STARTING';
    slot.id = workerId(slot.port);
    const t0 = performance.now();
    const cancel = new AbortController();
    slot.cancelStart = () => cancel.abort();
    WorkerProcess.start({
      ...this.#opts.workerOptions,
      id: slot.id,
      model: this.#opts.model,
      batchSize: this.#opts.batchSize,
      signal: cancel.signal,
    }).then(
      (proc) => {
        slot.cancelStart = null;
        this.#started(slot, proc, performance.now() - t0);
      },
      (err: unknown) => {
        slot.cancelStart = null;
        this.#startFailed(slot, err);
      },
    );
  }

  #notifyStart(slot: WorkerSlot, outcome: StartOutcome): void {
    const waiters = slot.startWaiters;
    slot.startWaiters = [];
    for (const w of waiters) w(outcome);
  }

  #started(slot: WorkerSlot, proc: WorkerProcess, startMs: number): void {
    slot.proc = proc;
    this.#notifyStart(slot, { workerId: slot.id, ok: true });
    if (slot.retiring) {
      this.#stopAndFinish(slot);
      return;
    }
    // The backoff is not reset here: only a reply or a healthy uptime proves the worker works (see HEALTHY_UPTIME_MS).
    slot.loadedAt = performance.now();
    slot.restarts = 0;
    slot.status = 'READY';
    proc.once('exit', () => this.#exited(slot, proc));
    this.#emit({ type: 'started', workerId: slot.id, pid: proc.pid, startMs });
    this.#aggregator.ready(slot);
  }

  #startFailed(slot: WorkerSlot, err: unknown): void {
    const error = isMarError(err)
      ? err
      : new MarError('WORKER_START_FAILED', `Worker ${slot.id} failed to start: ${String(err)}`, { cause: err });
    slot.lastError = error;
    this.#notifyStart(slot, { workerId: slot.id, ok: false, error });
    if (slot.retiring) {
      this.#finish(slot, null);
      return;
    }
    const delay = this.#scheduleRestart(slot);
    this.#emit({ type: 'start-failed', workerId: slot.id, error, retryInMs: delay });
  }

  /** Restart after the death of a loaded process: from the first backoff step if it had been up long enough. */
  #restartAfterDeath(slot: WorkerSlot): number {
    if (performance.now() - slot.loadedAt >= HEALTHY_UPTIME_MS) slot.backoff.reset();
    return this.#scheduleRestart(slot);
  }

  #scheduleRestart(slot: WorkerSlot): number {
    const delay = slot.backoff.next();
    slot.restarts++;
    slot.status = 'RESTARTING';
    slot.retryTimer = setTimeout(() => this.#start(slot), delay);
    return delay;
  }

  /** The process exited on its own. While a batch is in flight, the predict rejection handles it. */
  #exited(slot: WorkerSlot, proc: WorkerProcess): void {
    if (slot.proc !== proc || slot.batch !== null) return;
    slot.proc = null;
    this.#aggregator.withdraw(slot);
    const error = new MarError('WORKER_DIED', `Worker ${slot.id} (pid ${proc.pid}) exited while idle.`);
    slot.lastError = error;
    if (slot.retiring) {
      this.#finish(slot, proc.pid);
      return;
    }
    const delay = this.#restartAfterDeath(slot);
    this.#emit({ type: 'died', workerId: slot.id, pid: proc.pid, error, inFlight: 0, retryInMs: delay });
  }

  #run(slot: WorkerSlot, batch: Job[]): void {
    const proc = slot.proc;
    if (proc === null || proc.state !== 'ready') {
      // The process died while idle and its 'exit' has not arrived yet: nothing was sent, so the jobs keep
      // their place at the head of the queue (MMS only fails jobs that reached a worker).
      if (proc !== null) {
        slot.proc = null;
        void proc.stop(0).catch(() => undefined);
        const error = new MarError('WORKER_DIED', `Worker ${slot.id} (pid ${proc.pid}) is no longer running.`);
        slot.lastError = error;
        if (!slot.retiring) {
          const delay = this.#restartAfterDeath(slot);
          this.#emit({ type: 'died', workerId: slot.id, pid: proc.pid, error, inFlight: 0, retryInMs: delay });
        }
      }
      this.#aggregator.requeue(batch);
      if (slot.retiring) this.#finish(slot, proc?.pid ?? null);
      return;
    }
    slot.batch = batch;
    slot.status = 'BUSY';
    const requests: InferenceRequest[] = new Array(batch.length);
    for (let i = 0; i < batch.length; i++) {
      const job = batch[i]!;
      job.markSent();
      requests[i] = job.request;
    }
    proc.predict(requests, this.#opts.responseTimeoutMs).then(slot.onReply, slot.onPredictError);
  }

  #done(slot: WorkerSlot, reply: WorkerReply): void {
    const batch = slot.batch!;
    slot.batch = null;
    slot.backoff.reset(); // it answered: a later death starts the backoff over
    completeBatch(batch, reply);
    this.#opts.onBatchDone?.();
    if (slot.retiring) {
      this.#stopAndFinish(slot);
      return;
    }
    slot.status = 'READY';
    this.#aggregator.ready(slot);
  }

  #failed(slot: WorkerSlot, err: unknown): void {
    const batch = slot.batch!;
    slot.batch = null;
    const died = workerDiedError(err);
    for (const job of batch) job.reject(died);
    this.#opts.onBatchDone?.();
    const proc = slot.proc;
    slot.proc = null;
    slot.lastError = isMarError(err) ? err : died;
    const pid = proc?.pid ?? null;
    // Timeouts and frame errors already kill the process; make sure, without waiting for it.
    const stopped = proc ? proc.stop(0).catch(() => undefined) : Promise.resolve();
    if (slot.retiring) {
      void stopped.then(() => this.#finish(slot, pid));
      return;
    }
    const delay = this.#restartAfterDeath(slot);
    this.#emit({ type: 'died', workerId: slot.id, pid: pid ?? 0, error: slot.lastError, inFlight: batch.length, retryInMs: delay });
  }

  #retire(slot: WorkerSlot, graceMs: number): Promise<void> {
    if (slot.retiring) return slot.retired;
    slot.retiring = true;
    this.#active--;
    if (slot.retryTimer) {
      clearTimeout(slot.retryTimer);
      slot.retryTimer = null;
      this.#finish(slot, null);
    } else if (slot.status === 'STARTING') {
      slot.status = 'UNLOADING'; // #started / #startFailed stop the process and finish
      // A LOAD may hang up to its timeout: past the grace, cancel the start (the process is killed, #startFailed finishes).
      if (Number.isFinite(graceMs)) slot.killTimer = setTimeout(() => slot.cancelStart?.(), Math.min(Math.max(0, graceMs), MAX_TIMER_MS));
    } else if (slot.batch !== null) {
      slot.status = 'UNLOADING';
      if (Number.isFinite(graceMs)) {
        const proc = slot.proc;
        slot.killTimer = setTimeout(() => void proc?.stop(0).catch(() => undefined), Math.min(Math.max(0, graceMs), MAX_TIMER_MS));
      }
    } else if (slot.proc !== null) {
      this.#aggregator.withdraw(slot);
      this.#stopAndFinish(slot);
    } else {
      this.#finish(slot, null);
    }
    return slot.retired;
  }

  #stopAndFinish(slot: WorkerSlot): void {
    const proc = slot.proc;
    slot.proc = null;
    slot.status = 'UNLOADING';
    if (!proc) {
      this.#finish(slot, null);
      return;
    }
    proc
      .stop(STOP_GRACE_MS)
      .catch(() => undefined)
      .then(() => this.#finish(slot, proc.pid));
  }

  #finish(slot: WorkerSlot, pid: number | null): void {
    if (slot.finished) return;
    slot.finished = true;
    if (slot.killTimer) clearTimeout(slot.killTimer);
    slot.killTimer = null;
    slot.status = 'STOPPED';
    const i = this.#slots.indexOf(slot);
    if (i >= 0) this.#slots.splice(i, 1);
    this.#emit({ type: 'stopped', workerId: slot.id, pid });
    slot.resolveRetired();
  }
}

function safeMemory(proc: WorkerProcess): number {
  try {
    return proc.memoryUsage();
  } catch {
    return 0;
  }
}
