import { MarError } from '../errors.js';
import type { JobQueue } from './job-queue.js';

/** Something that runs one batch at a time: a supervised worker slot (or a fake one in unit tests). */
export interface BatchTarget<T> {
  /** Receives a batch to run. The target calls `ready()` again when it can take the next one. */
  runBatch(batch: T[]): void;
}

export interface BatchAggregatorOptions {
  /** Most jobs in one batch (>= 1). */
  batchSize: number;
  /** How long a forming batch may wait for more jobs, counted from when its first job was taken (ms, >= 0). */
  maxBatchDelayMs: number;
}

/**
 * MMS's `Model.pollBatch`, event-driven: an idle worker waits (no timeout) for the first job, then collects up to
 * `batchSize - 1` more within what remains of `maxBatchDelayMs`; a batch leaves as soon as it is full or the delay
 * is used up. Only one batch forms at a time (MMS's model-wide lock), so batch order = dequeue order, and idle
 * workers take turns in the order they became ready. A batch of size 1 never arms a timer.
 */
export class BatchAggregator<T> {
  readonly batchSize: number;
  readonly maxBatchDelayMs: number;
  readonly #queue: JobQueue<T>;
  readonly #waiting: Array<BatchTarget<T>> = [];
  #forming: T[] | null = null;
  #formingTarget: BatchTarget<T> | null = null;
  #timer: NodeJS.Timeout | null = null;
  #pumping = false;
  #closed = false;
  readonly #onTimer = (): void => {
    this.#timer = null;
    if (this.#forming) this.#flush();
    this.#pump();
  };

  constructor(queue: JobQueue<T>, options: BatchAggregatorOptions) {
    if (!Number.isInteger(options.batchSize) || options.batchSize < 1) {
      throw new MarError('USAGE', `batch size must be a positive integer, got ${options.batchSize}`);
    }
    if (!Number.isFinite(options.maxBatchDelayMs) || options.maxBatchDelayMs < 0) {
      throw new MarError('USAGE', `max batch delay must be a number of milliseconds >= 0, got ${options.maxBatchDelayMs}`);
    }
    this.#queue = queue;
    this.batchSize = options.batchSize;
    this.maxBatchDelayMs = options.maxBatchDelayMs;
  }

  /** Jobs taken from the queue into the batch that is forming now. */
  get formingLength(): number {
    return this.#forming?.length ?? 0;
  }

  /** Targets waiting for work (including the one forming a batch). */
  get idleTargets(): number {
    return this.#waiting.length + (this.#formingTarget ? 1 : 0);
  }

  /** Accepts a job; false when the queue is full (the caller answers 503). */
  add(job: T): boolean {
    if (!this.#queue.offer(job)) return false;
    this.#pump();
    return true;
  }

  /** A target is idle and wants its next batch. */
  ready(target: BatchTarget<T>): void {
    if (this.#closed) return;
    this.#waiting.push(target);
    this.#pump();
  }

  /**
   * Takes a target out of rotation (scale-down, death). If it was forming a batch, those jobs go back to the
   * head of the queue in order. True if the target was idle here (so it holds no batch).
   */
  withdraw(target: BatchTarget<T>): boolean {
    if (this.#formingTarget === target) {
      this.#clearTimer();
      const jobs = this.#forming!;
      this.#forming = null;
      this.#formingTarget = null;
      this.#queue.unshiftAll(jobs);
      this.#pump();
      return true;
    }
    const i = this.#waiting.indexOf(target);
    if (i < 0) return false;
    this.#waiting.splice(i, 1);
    return true;
  }

  /** Removes a job that was not sent yet (client abort): from the queue or the forming batch. */
  removeJob(job: T): boolean {
    if (this.#queue.remove(job)) return true;
    const forming = this.#forming;
    if (!forming) return false;
    const i = forming.indexOf(job);
    if (i < 0) return false;
    forming.splice(i, 1);
    if (forming.length === 0) {
      // Nothing left to wait for: the target goes back to waiting for a first job, first in line.
      this.#clearTimer();
      const target = this.#formingTarget!;
      this.#forming = null;
      this.#formingTarget = null;
      this.#waiting.unshift(target);
    }
    return true;
  }

  /** Puts a batch that was handed out but never sent back at the head of the queue, for the next idle target. */
  requeue(jobs: readonly T[]): void {
    this.#queue.unshiftAll(jobs);
    this.#pump();
  }

  /**
   * Stops handing out work: a forming batch goes back to the queue head and idle targets are forgotten.
   * Returns nothing; the owner decides what happens to the queued jobs.
   */
  close(): void {
    this.#closed = true;
    this.#clearTimer();
    if (this.#forming) this.#queue.unshiftAll(this.#forming);
    this.#forming = null;
    this.#formingTarget = null;
    this.#waiting.length = 0;
  }

  #pump(): void {
    // runBatch may call ready() synchronously; the loop below picks that up, so no re-entry.
    if (this.#pumping || this.#closed) return;
    this.#pumping = true;
    try {
      const queue = this.#queue;
      const size = this.batchSize;
      for (;;) {
        let forming = this.#forming;
        if (forming) {
          while (forming.length < size && queue.length > 0) forming.push(queue.poll()!);
          if (forming.length < size) return; // the timer or the next job decides
          this.#flush();
          continue;
        }
        if (this.#waiting.length === 0 || queue.length === 0 || this.#closed) return;
        const target = this.#waiting.shift()!;
        const first = queue.poll()!;
        if (size === 1) {
          target.runBatch([first]);
          continue;
        }
        forming = [first];
        while (forming.length < size && queue.length > 0) forming.push(queue.poll()!);
        this.#forming = forming;
        this.#formingTarget = target;
        if (forming.length >= size || this.maxBatchDelayMs <= 0) {
          this.#flush();
          continue;
        }
        // setTimeout fires after 1 ms for delays over 2^31-1 ms: clamp (a delay that long never ends in practice).
        this.#timer = setTimeout(this.#onTimer, Math.min(this.maxBatchDelayMs, 0x7fffffff));
        return;
      }
    } finally {
      this.#pumping = false;
    }
  }

  #flush(): void {
    this.#clearTimer();
    const batch = this.#forming!;
    const target = this.#formingTarget!;
    this.#forming = null;
    this.#formingTarget = null;
    target.runBatch(batch);
  }

  #clearTimer(): void {
    if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
  }
}
