/**
 * One supervised worker position of a WorkerPool and the one state it is in. The state is a single
 * discriminated union, so a slot cannot be, say, busy without a process or restarting with a batch.
 */
import { randomBytes } from 'node:crypto';
import type { MarError } from '../errors.js';
import type { Backoff } from './backoff.js';
import type { BatchTarget } from './batch-aggregator.js';
import type { Job } from './job-queue.js';
import type { WorkerReply } from './protocol.js';
import type { WorkerProcess } from './worker-process.js';

/**
 * Worker states as `describe` shows them. MMS itself only says READY (loaded) or UNLOADING (anything else);
 * we tell busy, starting and restarting workers apart.
 */
export type WorkerStatus = 'STARTING' | 'READY' | 'BUSY' | 'RESTARTING' | 'UNLOADING' | 'STOPPED';

/** Outcome of one worker's start attempt, for synchronous scaling. */
export interface StartOutcome {
  workerId: string;
  ok: boolean;
  error?: MarError;
}

/** A retirement that waits for a start or a batch to end; the timer cuts that wait short (null: no limit). */
export interface Retirement {
  killTimer: NodeJS.Timeout | null;
}

export type SlotState =
  /** A start attempt is under way; `cancel` kills its process. */
  | { kind: 'starting'; cancel: () => void; retire: Retirement | null }
  /** Loaded and waiting in the aggregator for a batch. */
  | { kind: 'idle'; proc: WorkerProcess }
  | { kind: 'busy'; proc: WorkerProcess; batch: Job[]; retire: Retirement | null }
  /** The process died or failed to start; the timer starts the next attempt. */
  | { kind: 'backoff'; timer: NodeJS.Timeout }
  /** Retired; its process (if any) is on its way out. */
  | { kind: 'stopping'; retire: Retirement }
  /** Retired and removed from the pool. */
  | { kind: 'stopped' };

/** What `describe` calls a state. */
export function slotStatus(s: SlotState): WorkerStatus {
  switch (s.kind) {
    case 'starting':
      return s.retire ? 'UNLOADING' : 'STARTING';
    case 'idle':
      return 'READY';
    case 'busy':
      return s.retire ? 'UNLOADING' : 'BUSY';
    case 'backoff':
      return 'RESTARTING';
    case 'stopping':
      return 'UNLOADING';
    case 'stopped':
      return 'STOPPED';
  }
}

/** True once the slot is being retired (it no longer counts as configured). */
export function isRetiring(s: SlotState): boolean {
  return s.kind === 'stopping' || s.kind === 'stopped' || ((s.kind === 'starting' || s.kind === 'busy') && s.retire !== null);
}

/** The process of a loaded slot, or null. */
export function slotProcess(s: SlotState): WorkerProcess | null {
  return s.kind === 'idle' || s.kind === 'busy' ? s.proc : null;
}

/** How a slot reports back to its pool (bound once per slot: the hot path creates no closures per batch). */
export interface SlotOwner {
  run(slot: WorkerSlot, batch: Job[]): void;
  done(slot: WorkerSlot, reply: WorkerReply): void;
  failed(slot: WorkerSlot, err: unknown): void;
}

// MMS numbers workers from port 9000 upwards across all models; ours are process-wide too.
let nextPort = 9000;

const newWorkerId = (port: number): string => `${port}-${randomBytes(4).toString('hex')}`;

/** One supervised worker position: survives its processes (restarts keep the slot). */
export class WorkerSlot implements BatchTarget<Job> {
  readonly port: number;
  /** `<port>-<8 hex>` like MMS (`9001-55778aba`); renewed by newId() for every process. */
  id: string;
  state: SlotState;
  readonly backoff: Backoff;
  /** Waiters for the end of the current start attempt. */
  startWaiters: Array<(o: StartOutcome) => void> = [];
  lastError: MarError | null = null;
  restarts = 0;
  /** performance.now() of the current process's successful LOAD. */
  loadedAt = 0;
  /** Frontend time spent handing the current batch to the worker (ms; measured only for RuntimeTimings). */
  sendMs = 0;
  readonly retired: Promise<void>;
  resolveRetired!: () => void;
  readonly onReply: (reply: WorkerReply) => void;
  readonly onPredictError: (err: unknown) => void;
  readonly runBatch: (batch: Job[]) => void;

  constructor(owner: SlotOwner, backoff: Backoff) {
    this.port = nextPort++;
    this.id = newWorkerId(this.port);
    this.backoff = backoff;
    // until the pool's first start attempt, which follows at once, replaces it with its own
    this.state = { kind: 'starting', cancel: () => undefined, retire: null };
    this.retired = new Promise((resolve) => (this.resolveRetired = resolve));
    this.onReply = (reply) => owner.done(this, reply);
    this.onPredictError = (err) => owner.failed(this, err);
    this.runBatch = (batch) => owner.run(this, batch);
  }

  /** A fresh id for the next process in this slot. */
  newId(): void {
    this.id = newWorkerId(this.port);
  }
}
