import { isMarError, MarError } from '../errors.js';
import { Backoff } from './backoff.js';
import type { BatchAggregator } from './batch-aggregator.js';
import type { Job } from './job-queue.js';
import type { RuntimeTimings } from './metrics.js';
import type { OpenedModel } from './model.js';
import type { InferenceRequest, WorkerReply } from './protocol.js';
import type { WorkerProcessOptions } from './worker-process.js';
import { WorkerProcess } from './worker-process.js';
import { completeBatch, workerDiedError } from './worker-reply.js';
import {
  isRetiring,
  type Retirement,
  type SlotOwner,
  type StartOutcome,
  slotProcess,
  slotStatus,
  WorkerSlot,
  type WorkerStatus,
} from './worker-slot.js';

export type { StartOutcome, WorkerStatus } from './worker-slot.js';

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

/** Options handed to every WorkerProcess.start (minus what the pool decides itself). */
export type PoolWorkerOptions = Omit<WorkerProcessOptions, 'id' | 'model' | 'batchSize' | 'workers'>;

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
  /** Load and per-batch frontend timings (a server's metrics); undefined: not measured. */
  timings?: RuntimeTimings | undefined;
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

/**
 * Supervises the worker processes of one model: starts them, hands them to the BatchAggregator when idle, runs
 * one batch at a time on each, replaces the dead (backoff 1, 1, 2, 3, 5, ... s, reset after a good load) and
 * retires workers gracefully (in-flight batches finish; pulled-but-unsent jobs go back to the queue head).
 */
export class WorkerPool {
  readonly #opts: WorkerPoolOptions;
  readonly #aggregator: BatchAggregator<Job>;
  readonly #slots: WorkerSlot[] = [];
  readonly #owner: SlotOwner;
  /** Slots not being retired (read on every submit, so kept as a counter). */
  #active = 0;
  #closed = false;

  constructor(options: WorkerPoolOptions) {
    this.#opts = options;
    this.#aggregator = options.aggregator;
    this.#owner = {
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
    for (const s of this.#slots) if (s.state.kind === 'idle' || (s.state.kind === 'busy' && s.state.retire === null)) n++;
    return n;
  }

  /** Workers running a batch right now (including ones being retired). */
  get busy(): number {
    let n = 0;
    for (const s of this.#slots) if (s.state.kind === 'busy') n++;
    return n;
  }

  workers(): WorkerInfo[] {
    return this.#slots.map((s) => {
      const proc = slotProcess(s.state);
      return {
        id: s.id,
        pid: proc?.pid ?? null,
        startTime: proc?.startTime ?? null,
        status: slotStatus(s.state),
        memoryUsage: proc ? safeMemory(proc) : 0,
        gpu: false as const,
        restarts: s.restarts,
        lastError: s.lastError?.message ?? null,
      };
    });
  }

  /** Adds `count` workers and starts them; each promise settles when that worker's first start attempt ends. */
  add(count: number): Array<Promise<StartOutcome>> {
    if (this.#closed) throw new MarError('SERVICE_UNAVAILABLE', `Model ${this.#opts.model.name} is being unloaded.`);
    const out: Array<Promise<StartOutcome>> = [];
    const added: WorkerSlot[] = [];
    for (let i = 0; i < count; i++) {
      const slot = new WorkerSlot(this.#owner, new Backoff(this.#opts.backoffMs, this.#opts.maxBackoffMs));
      this.#slots.push(slot);
      this.#active++;
      added.push(slot);
    }
    // Started once all are counted: each worker's thread share (launchers.ts) divides by the new size.
    for (const slot of added) {
      out.push(this.#waitStart(slot));
      this.#start(slot);
    }
    return out;
  }

  /** Promises for the end of the current start attempt of every worker that is starting now. */
  pendingStarts(): Array<Promise<StartOutcome>> {
    return this.#slots.filter((s) => s.state.kind === 'starting' && s.state.retire === null).map((s) => this.#waitStart(s));
  }

  /**
   * Retires the configured workers from index `keep` on (MMS scale-down: threads with index >= max). Busy ones
   * finish their batch first (or are killed after `graceMs`). Resolves when they are all stopped.
   */
  async shrink(keep: number, graceMs = Infinity): Promise<void> {
    const active = this.#slots.filter((s) => !isRetiring(s.state));
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
    slot.newId();
    const t0 = performance.now();
    const cancel = new AbortController();
    slot.state = { kind: 'starting', cancel: () => cancel.abort(), retire: null };
    WorkerProcess.start({
      ...this.#opts.workerOptions,
      id: slot.id,
      model: this.#opts.model,
      batchSize: this.#opts.batchSize,
      workers: this.#active,
      signal: cancel.signal,
    }).then(
      (proc) => this.#started(slot, proc, performance.now() - t0),
      (err: unknown) => this.#startFailed(slot, err),
    );
  }

  #notifyStart(slot: WorkerSlot, outcome: StartOutcome): void {
    const waiters = slot.startWaiters;
    slot.startWaiters = [];
    for (const w of waiters) w(outcome);
  }

  #started(slot: WorkerSlot, proc: WorkerProcess, startMs: number): void {
    this.#notifyStart(slot, { workerId: slot.id, ok: true });
    const s = slot.state;
    if (s.kind === 'starting' && s.retire) {
      this.#stopAndFinish(slot, proc, s.retire);
      return;
    }
    // The backoff is not reset here: only a reply or a healthy uptime proves the worker works (see HEALTHY_UPTIME_MS).
    slot.loadedAt = performance.now();
    slot.restarts = 0;
    slot.state = { kind: 'idle', proc };
    proc.once('exit', () => this.#exited(slot, proc));
    this.#emit({ type: 'started', workerId: slot.id, pid: proc.pid, startMs });
    this.#opts.timings?.workerLoaded(slot.port, startMs);
    this.#aggregator.ready(slot);
  }

  #startFailed(slot: WorkerSlot, err: unknown): void {
    const error = isMarError(err)
      ? err
      : new MarError('WORKER_START_FAILED', `Worker ${slot.id} failed to start: ${String(err)}`, { cause: err });
    slot.lastError = error;
    this.#notifyStart(slot, { workerId: slot.id, ok: false, error });
    if (isRetiring(slot.state)) {
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
    slot.state = { kind: 'backoff', timer: setTimeout(() => this.#start(slot), delay) };
    return delay;
  }

  /** The process exited on its own while idle. While a batch is in flight, the predict rejection handles it. */
  #exited(slot: WorkerSlot, proc: WorkerProcess): void {
    const s = slot.state;
    if (s.kind !== 'idle' || s.proc !== proc) return;
    this.#aggregator.withdraw(slot);
    const error = new MarError('WORKER_DIED', `Worker ${slot.id} (pid ${proc.pid}) exited while idle.`);
    slot.lastError = error;
    const delay = this.#restartAfterDeath(slot);
    this.#emit({ type: 'died', workerId: slot.id, pid: proc.pid, error, inFlight: 0, retryInMs: delay });
  }

  #run(slot: WorkerSlot, batch: Job[]): void {
    const s = slot.state;
    if (s.kind !== 'idle' || s.proc.state !== 'ready') {
      // The process died while idle and its 'exit' has not arrived yet: nothing was sent, so the jobs keep
      // their place at the head of the queue (MMS only fails jobs that reached a worker).
      if (s.kind === 'idle') {
        const proc = s.proc;
        void proc.stop(0).catch(() => undefined);
        const error = new MarError('WORKER_DIED', `Worker ${slot.id} (pid ${proc.pid}) is no longer running.`);
        slot.lastError = error;
        const delay = this.#restartAfterDeath(slot);
        this.#emit({ type: 'died', workerId: slot.id, pid: proc.pid, error, inFlight: 0, retryInMs: delay });
      }
      this.#aggregator.requeue(batch);
      return;
    }
    slot.state = { kind: 'busy', proc: s.proc, batch, retire: null };
    const takenAt = performance.now();
    const requests: InferenceRequest[] = new Array(batch.length);
    for (let i = 0; i < batch.length; i++) {
      const job = batch[i]!;
      job.markSent(takenAt);
      requests[i] = job.request;
    }
    s.proc.send(requests, this.#opts.responseTimeoutMs, slot.onReply, slot.onPredictError);
    if (this.#opts.timings) slot.sendMs = performance.now() - takenAt;
  }

  #done(slot: WorkerSlot, reply: WorkerReply): void {
    const s = slot.state;
    if (s.kind !== 'busy') return;
    // The state moves on before anyone hears of the batch's end (onBatchDone counts busy workers).
    slot.state = s.retire ? { kind: 'stopping', retire: s.retire } : { kind: 'idle', proc: s.proc };
    slot.backoff.reset(); // it answered: a later death starts the backoff over
    const sendMs = slot.sendMs;
    // The worker's next batch first (this runs in the socket's 'data' event): it works while this batch's
    // answers are written.
    if (s.retire) this.#stopAndFinish(slot, s.proc, s.retire);
    else this.#aggregator.ready(slot);
    const timings = this.#opts.timings;
    const answeringAt = timings ? performance.now() : 0;
    completeBatch(s.batch, reply);
    if (timings) timings.batchOverhead(sendMs + performance.now() - answeringAt);
    this.#opts.onBatchDone?.();
  }

  #failed(slot: WorkerSlot, err: unknown): void {
    const s = slot.state;
    if (s.kind !== 'busy') return;
    const { proc, batch, retire } = s;
    const died = workerDiedError(err);
    slot.lastError = isMarError(err) ? err : died;
    // Timeouts and frame errors already kill the process; make sure, without waiting for it.
    const stopped = proc.stop(0).catch(() => undefined);
    let delay: number | null = null;
    if (retire) {
      slot.state = { kind: 'stopping', retire };
      void stopped.then(() => this.#finish(slot, proc.pid));
    } else {
      delay = this.#restartAfterDeath(slot);
    }
    for (const job of batch) job.reject(died);
    this.#opts.onBatchDone?.();
    if (delay !== null) {
      this.#emit({ type: 'died', workerId: slot.id, pid: proc.pid, error: slot.lastError, inFlight: batch.length, retryInMs: delay });
    }
  }

  #retire(slot: WorkerSlot, graceMs: number): Promise<void> {
    const s = slot.state;
    if (isRetiring(s)) return slot.retired;
    this.#active--;
    const limited = (fn: () => void): Retirement => ({
      killTimer: Number.isFinite(graceMs) ? setTimeout(fn, Math.min(Math.max(0, graceMs), MAX_TIMER_MS)) : null,
    });
    switch (s.kind) {
      case 'backoff':
        clearTimeout(s.timer);
        this.#finish(slot, null);
        break;
      case 'starting':
        // #started / #startFailed stop the process and finish. A LOAD may hang up to its timeout: past the
        // grace, cancel the start (the process is killed, #startFailed finishes).
        slot.state = { ...s, retire: limited(s.cancel) };
        break;
      case 'busy':
        slot.state = { ...s, retire: limited(() => void s.proc.stop(0).catch(() => undefined)) };
        break;
      case 'idle':
        this.#aggregator.withdraw(slot);
        this.#stopAndFinish(slot, s.proc, { killTimer: null });
        break;
    }
    return slot.retired;
  }

  #stopAndFinish(slot: WorkerSlot, proc: WorkerProcess, retire: Retirement): void {
    slot.state = { kind: 'stopping', retire };
    proc
      .stop(STOP_GRACE_MS)
      .catch(() => undefined)
      .then(() => this.#finish(slot, proc.pid));
  }

  #finish(slot: WorkerSlot, pid: number | null): void {
    const s = slot.state;
    if (s.kind === 'stopped') return;
    if ((s.kind === 'starting' || s.kind === 'busy' || s.kind === 'stopping') && s.retire?.killTimer) clearTimeout(s.retire.killTimer);
    slot.state = { kind: 'stopped' };
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
